//! Lineage Explorer (server-rendered web UI). Not built yet: see issue "Lineage Explorer".
