//! Python values to JSON: an event's `attrs`.
//!
//! Only what JSON can say exactly is accepted: `None`, `bool`, `int` (64-bit,
//! signed or unsigned), finite `float`, `str`, `list`/`tuple`, and `dict`
//! with `str` keys. Anything else is a `TypeError` rather than a silent
//! `str()`: what is signed is exactly what the caller passed.

use lineage_client::Attrs;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde_json::{Map, Number, Value};

/// Deepest nesting accepted (the ledger's payload limit, 32 KiB, is far
/// below what a deeper value would take; this only stops a cycle or a
/// runaway structure before the stack does).
const MAX_DEPTH: usize = 64;

/// `attrs` (a dict or `None`) as an event's attribute map.
pub fn attrs(value: Option<&Bound<'_, PyAny>>) -> PyResult<Attrs> {
    match value {
        None => Ok(Map::new()),
        Some(v) if v.is_none() => Ok(Map::new()),
        Some(v) => match to_json(v, 0)? {
            Value::Object(m) => Ok(m),
            _ => Err(PyTypeError::new_err("attrs must be a dict with str keys")),
        },
    }
}

fn to_json(v: &Bound<'_, PyAny>, depth: usize) -> PyResult<Value> {
    if depth > MAX_DEPTH {
        return Err(PyValueError::new_err(format!(
            "attrs nest deeper than {MAX_DEPTH} levels"
        )));
    }
    if v.is_none() {
        return Ok(Value::Null);
    }
    // bool before int: Python's bool is an int subclass.
    if let Ok(b) = v.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if v.cast::<PyInt>().is_ok() {
        if let Ok(i) = v.extract::<i64>() {
            return Ok(Value::from(i));
        }
        if let Ok(u) = v.extract::<u64>() {
            return Ok(Value::from(u));
        }
        return Err(PyValueError::new_err(
            "an int in attrs must fit in 64 bits (use a str for larger numbers)",
        ));
    }
    if let Ok(f) = v.cast::<PyFloat>() {
        return Number::from_f64(f.value())
            .map(Value::Number)
            .ok_or_else(|| PyValueError::new_err("a float in attrs must be finite"));
    }
    if let Ok(s) = v.cast::<PyString>() {
        return Ok(Value::String(s.to_cow()?.into_owned()));
    }
    if let Ok(d) = v.cast::<PyDict>() {
        let mut m = Map::with_capacity(d.len());
        for (k, val) in d.iter() {
            let Ok(k) = k.cast::<PyString>() else {
                return Err(PyTypeError::new_err("a dict key in attrs must be a str"));
            };
            m.insert(k.to_cow()?.into_owned(), to_json(&val, depth + 1)?);
        }
        return Ok(Value::Object(m));
    }
    if let Ok(l) = v.cast::<PyList>() {
        return l.iter().map(|x| to_json(&x, depth + 1)).collect();
    }
    if let Ok(t) = v.cast::<PyTuple>() {
        return t.iter().map(|x| to_json(&x, depth + 1)).collect();
    }
    let ty = v.get_type().name()?;
    Err(PyTypeError::new_err(format!(
        "attrs values must be None, bool, int, float, str, list, tuple or dict, not {ty}"
    )))
}
