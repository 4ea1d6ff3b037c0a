//! Listing matches a sorted model exactly: 3,000 keys with nested prefixes,
//! paginated at 1,000, with and without a delimiter, on one and many sets.

mod common;

use std::collections::BTreeSet;

use basalt::object::ListOptions;
use common::Node;

/// Keys with nested prefixes and characters that sort around '/'.
fn keys() -> Vec<String> {
    let mut keys = Vec::new();
    for i in 0..3000 {
        let k = match i % 6 {
            0 => format!("logs/2026/{:02}/{:04}.log", i % 12, i),
            1 => format!("logs/2026-archive/{i:04}"),
            2 => format!("photos/{}/img-{i:04}.jpg", ["a", "b", "a-b", "a.b"][i % 4]),
            3 => format!("top-{i:04}"),
            4 => format!("deep/{}/{}/{}/{i}", i % 3, i % 5, i % 7),
            _ => format!("logs/{i:04}/"),
        };
        keys.push(k);
    }
    keys.sort();
    keys.dedup();
    keys
}

/// What S3 returns for one page, computed from the full sorted key list.
fn model_page(
    all: &[String],
    prefix: &str,
    delimiter: Option<&str>,
    after: &str,
    max: usize,
) -> (Vec<String>, Vec<String>, bool) {
    let mut objects = Vec::new();
    let mut prefixes: Vec<String> = Vec::new();
    let mut seen = BTreeSet::new();
    let mut count = 0;
    for k in all.iter().filter(|k| k.starts_with(prefix)) {
        let entry = delimiter
            .and_then(|d| k[prefix.len()..].find(d).map(|i| (d, i)))
            .map(|(d, i)| k[..prefix.len() + i + d.len()].to_string());
        let sort_key = entry.clone().unwrap_or_else(|| k.clone());
        if sort_key.as_str() <= after || (entry.is_some() && after.starts_with(sort_key.as_str())) {
            continue;
        }
        if let Some(cp) = entry {
            if !seen.insert(cp.clone()) {
                continue;
            }
            if count == max {
                return (objects, prefixes, true);
            }
            prefixes.push(cp);
        } else {
            if count == max {
                return (objects, prefixes, true);
            }
            objects.push(k.clone());
        }
        count += 1;
    }
    (objects, prefixes, false)
}

fn check_listing(node: &Node, all: &[String], prefix: &str, delimiter: Option<&str>, page: usize) {
    let mut after = String::new();
    let mut got_objects = Vec::new();
    let mut got_prefixes = Vec::new();
    let mut pages = 0;
    loop {
        let opts = ListOptions {
            prefix: prefix.into(),
            delimiter: delimiter.map(String::from),
            start_after: after.clone(),
            max_keys: page,
        };
        let res = node.list("bucket", opts).unwrap();
        let (want_objects, want_prefixes, want_truncated) = model_page(all, prefix, delimiter, &after, page);
        let objects: Vec<String> = res.objects.iter().map(|o| o.key.clone()).collect();
        assert_eq!(objects, want_objects, "prefix {prefix:?} delimiter {delimiter:?} after {after:?}");
        assert_eq!(res.prefixes, want_prefixes, "prefix {prefix:?} delimiter {delimiter:?} after {after:?}");
        assert_eq!(res.is_truncated, want_truncated, "truncation, after {after:?}");
        got_objects.extend(objects);
        got_prefixes.extend(res.prefixes.clone());
        pages += 1;
        assert!(pages < 100, "listing does not end");
        if !res.is_truncated {
            break;
        }
        after = res.next_marker.expect("a truncated page says where to continue");
    }
    // The pages together are the whole listing.
    let (all_objects, all_prefixes, _) = model_page(all, prefix, delimiter, "", usize::MAX);
    assert_eq!(got_objects, all_objects);
    assert_eq!(got_prefixes, all_prefixes);
}

fn listing_matches_model(drives: usize) {
    let node = Node::start(drives, 2);
    node.make_bucket("bucket").unwrap();
    let all = keys();
    for (i, k) in all.iter().enumerate() {
        node.put_on(i % 2, "bucket", k, k.as_bytes()).unwrap();
    }
    for (prefix, delimiter) in [
        ("", None),
        ("", Some("/")),
        ("logs/", Some("/")),
        ("logs/2026", Some("/")),
        ("photos/a", None),
        ("deep/", Some("/")),
        ("nothing", None),
        ("", Some("-")),
    ] {
        check_listing(&node, &all, prefix, delimiter, 1000);
    }
    check_listing(&node, &all, "photos/", Some("/"), 2);
    check_listing(&node, &all, "logs/2026/", None, 37);
    // Sizes and ETags come with the keys.
    let res = node.list("bucket", ListOptions { prefix: "top-".into(), max_keys: 5, ..Default::default() }).unwrap();
    for o in &res.objects {
        assert_eq!(o.size as usize, o.key.len());
    }
    // Deleted keys disappear from listings at once.
    node.delete("bucket", "top-0003").unwrap();
    let res = node.list("bucket", ListOptions { prefix: "top-000".into(), ..Default::default() }).unwrap();
    assert!(res.objects.iter().all(|o| o.key != "top-0003"));
}

#[test]
fn listing_one_set_of_4() {
    listing_matches_model(4);
}

#[test]
fn listing_two_sets_of_16() {
    listing_matches_model(32);
}

#[test]
fn listing_one_drive() {
    listing_matches_model(1);
}
