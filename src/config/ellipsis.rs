//! MinIO's ellipsis syntax for drive and endpoint lists: `/mnt/disk{1...4}`
//! expands to four paths; several ellipses in one argument expand to their cross
//! product; `{01...16}` keeps the zero padding.

/// Most paths one argument may expand to; a typo like `{1...100000}` should be
/// an error, not a hang.
pub const MAX_EXPANSION: usize = 16 * 1024;

/// Expands every `{a...b}` in `arg`, left to right, leftmost varying slowest.
pub fn expand(arg: &str) -> Result<Vec<String>, String> {
    let Some(open) = arg.find('{') else { return Ok(vec![arg.to_string()]) };
    let close = arg[open..].find('}').map(|i| open + i).ok_or_else(|| format!("{arg}: '{{' without a closing '}}'"))?;
    let inner = &arg[open + 1..close];
    let (a, b) = inner.split_once("...").ok_or_else(|| format!("{arg}: expected {{START...END}}, got {{{inner}}}"))?;
    let start: u64 = a.parse().map_err(|_| format!("{arg}: {a:?} is not a number"))?;
    let end: u64 = b.parse().map_err(|_| format!("{arg}: {b:?} is not a number"))?;
    if end < start {
        return Err(format!("{arg}: the range {{{inner}}} runs backwards"));
    }
    let width = if a.len() > 1 && a.starts_with('0') { a.len() } else { 0 };
    let rest = expand(&arg[close + 1..])?;
    let count = (end - start + 1) as usize;
    if count.saturating_mul(rest.len()) > MAX_EXPANSION {
        return Err(format!("{arg}: expands to more than {MAX_EXPANSION} paths"));
    }
    let mut out = Vec::with_capacity(count * rest.len());
    for n in start..=end {
        for tail in &rest {
            out.push(format!("{}{:0width$}{}", &arg[..open], n, tail, width = width));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansions() {
        assert_eq!(expand("/mnt/disk{1...3}").unwrap(), ["/mnt/disk1", "/mnt/disk2", "/mnt/disk3"]);
        assert_eq!(expand("/d{01...03}").unwrap(), ["/d01", "/d02", "/d03"]);
        assert_eq!(
            expand("http://n{1...2}/d{1...2}").unwrap(),
            ["http://n1/d1", "http://n1/d2", "http://n2/d1", "http://n2/d2"]
        );
        assert_eq!(expand("/plain").unwrap(), ["/plain"]);
        assert!(expand("/d{3...1}").is_err());
        assert!(expand("/d{1..3}").is_err());
        assert!(expand("/d{1...").is_err());
        assert!(expand("/d{1...99999999}").is_err());
    }
}
