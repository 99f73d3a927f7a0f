//! Column encodings shared by both stores.

/// Joins enum wire names as a comma-separated column value.
pub(crate) fn join<T>(items: &[T], name: impl Fn(&T) -> &'static str) -> String {
    items.iter().map(name).collect::<Vec<_>>().join(",")
}

/// Splits a comma-separated column value, skipping names this version does not know.
pub(crate) fn split<T>(s: &str, parse: impl Fn(&str) -> Option<T>) -> Vec<T> {
    s.split(',').filter_map(|p| parse(p.trim())).collect()
}
