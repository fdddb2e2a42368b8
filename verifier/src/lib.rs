//! Offline verifier for auditors. Not built yet: see issue "The offline verifier".
