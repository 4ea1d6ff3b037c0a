//! Topology: the drive arguments of `basalt server` turned into nodes, drives and
//! erasure sets, identically on every node.
//!
//! Arguments are either all plain paths (one node, this one) or all URLs
//! (`http://host:port/path`). Each argument expands its ellipses; arguments that
//! carry ellipses are server pools in MinIO's sense, and only one pool is
//! supported yet. Endpoints with the same `host:port` are one node. Drives get
//! global indices interleaved over nodes (drive 1 of every node, then drive 2 of
//! every node, ...), and sets are consecutive runs of those indices, so every set
//! takes the same share of drives from every node it spans.
//!
//! Which node this process is: the endpoints whose port is the listening port
//! and whose host is an address of this machine.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use super::{ConfigError, Layout, ellipsis};
use crate::erasure::MAX_SET_DRIVES;

/// One drive of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Index of the node that holds it.
    pub node: usize,
    pub path: PathBuf,
    /// The argument as given (after expansion), for messages.
    pub text: String,
}

/// One `basalt server` process of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub host: String,
    pub port: u16,
    /// Global indices of its drives, in argument order.
    pub drives: Vec<usize>,
}

impl NodeInfo {
    /// `host:port`, as peers dial it.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Every node's view of the cluster; identical on all of them except `local`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// Drives by global index.
    pub endpoints: Vec<Endpoint>,
    pub nodes: Vec<NodeInfo>,
    /// This process's node.
    pub local: usize,
    pub layout: Layout,
    /// Hash of the expanded arguments and parity: peers compare it at the
    /// handshake, so a node started with other arguments cannot join.
    pub fingerprint: u64,
    /// Whether the drives were given as URLs (a cluster, even of one node).
    pub distributed: bool,
}

impl Topology {
    pub fn is_local(&self, drive: usize) -> bool {
        self.endpoints[drive].node == self.local
    }

    /// This node's drives (global indices), in argument order.
    pub fn local_drives(&self) -> &[usize] {
        &self.nodes[self.local].drives
    }

    /// The position of a local drive among this node's drives: drive `k` of a node
    /// is owned by core `k mod cores`.
    pub fn local_slot(&self, drive: usize) -> Option<usize> {
        self.local_drives().iter().position(|d| *d == drive)
    }

    /// Sets, nodes and drives, for a person (`basalt layout`).
    pub fn describe(&self) -> String {
        let mut out = self.layout.describe();
        if self.distributed {
            out.push_str(&format!(" on {} nodes", self.nodes.len()));
        }
        for (i, set) in self.layout.sets.iter().enumerate() {
            out.push_str(&format!("\nset {}:", i + 1));
            for d in set {
                out.push_str(&format!("\n  drive {:>3}  {}", d + 1, self.endpoints[*d].text));
            }
        }
        out
    }

    /// Nodes other than this one.
    pub fn peers(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.nodes.len()).filter(move |n| *n != self.local)
    }
}

/// A topology basalt refuses to start with; the message says what to fix.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TopologyError {
    #[error("{0}")]
    Expand(String),
    #[error("{0}")]
    Layout(#[from] ConfigError),
    #[error(
        "drives mix URLs and plain paths ({0} and {1}): give every drive as http://host:port/path, or all as paths"
    )]
    Mixed(String, String),
    #[error("{0:?} is not a drive URL: expected http://host:port/path")]
    BadUrl(String),
    #[error(
        "several arguments carry ellipses ({0}), which makes several server pools; basalt supports one pool: \
         put all drives in one argument, or list them one by one"
    )]
    Pools(usize),
    #[error("endpoint {0} is given twice")]
    Duplicate(String),
    #[error("{0} and {1} are the same directory on the same machine: every drive must be its own directory")]
    SameDirectory(String, String),
    #[error("nodes have different numbers of drives ({0}): give every node the same number")]
    Uneven(String),
    #[error(
        "{drives} drives on {nodes} nodes cannot form erasure sets of 2 to {max} drives spread evenly over the nodes",
        max = MAX_SET_DRIVES
    )]
    NoSetSize { drives: usize, nodes: usize },
    #[error(
        "none of the endpoints is this node (listening on {0}): start each node with --address HOST:PORT matching its \
         own endpoints"
    )]
    NotMine(SocketAddr),
}

/// Parses the drive arguments as the server does.
pub fn parse(args: &[String], parity: Option<usize>, listen: SocketAddr) -> Result<Topology, TopologyError> {
    parse_as(args, parity, Some(listen))
}

/// Parses the drive arguments; without `listen` no node is this process (node 1
/// stands in), which is how `basalt layout` shows a cluster from anywhere.
pub fn parse_as(args: &[String], parity: Option<usize>, listen: Option<SocketAddr>) -> Result<Topology, TopologyError> {
    let pools = args.iter().filter(|a| a.contains('{')).count();
    if pools > 1 {
        return Err(TopologyError::Pools(pools));
    }
    let mut expanded = Vec::new();
    for a in args {
        expanded.extend(ellipsis::expand(a).map_err(TopologyError::Expand)?);
    }
    if expanded.is_empty() {
        return Err(ConfigError::NoDrives.into());
    }
    let urls = expanded.iter().filter(|e| is_url(e)).count();
    if urls == 0 {
        return local_topology(&expanded.iter().map(PathBuf::from).collect::<Vec<_>>(), parity);
    }
    if urls != expanded.len() {
        let url = expanded.iter().find(|e| is_url(e)).cloned().unwrap_or_default();
        let path = expanded.iter().find(|e| !is_url(e)).cloned().unwrap_or_default();
        return Err(TopologyError::Mixed(url, path));
    }
    let mut parsed = Vec::with_capacity(expanded.len());
    for e in &expanded {
        parsed.push(parse_url(e)?);
    }
    // Nodes in order of first appearance.
    let mut nodes: Vec<(String, u16, Vec<usize>)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, (host, port, path)) in parsed.iter().enumerate() {
        if !seen.insert((host.clone(), *port, path.clone())) {
            return Err(TopologyError::Duplicate(expanded[i].clone()));
        }
        match nodes.iter_mut().find(|(h, p, _)| h == host && p == port) {
            Some(n) => n.2.push(i),
            None => nodes.push((host.clone(), *port, vec![i])),
        }
    }
    // One directory used by two nodes of one machine.
    for (i, (hi, pi, di)) in parsed.iter().enumerate() {
        for (j, (hj, pj, dj)) in parsed.iter().enumerate().skip(i + 1) {
            if di == dj && pi != pj && same_machine(hi, hj) {
                return Err(TopologyError::SameDirectory(expanded[i].clone(), expanded[j].clone()));
            }
        }
    }
    let per_node = nodes[0].2.len();
    if nodes.iter().any(|n| n.2.len() != per_node) {
        let counts: Vec<String> = nodes.iter().map(|(h, p, d)| format!("{h}:{p} has {}", d.len())).collect();
        return Err(TopologyError::Uneven(counts.join(", ")));
    }
    // Global order: drive k of every node, for k = 0, 1, ...
    let mut endpoints = Vec::with_capacity(expanded.len());
    let mut node_drives = vec![Vec::with_capacity(per_node); nodes.len()];
    for k in 0..per_node {
        for (n, (_, _, args)) in nodes.iter().enumerate() {
            let arg = args[k];
            node_drives[n].push(endpoints.len());
            endpoints.push(Endpoint { node: n, path: parsed[arg].2.clone(), text: expanded[arg].clone() });
        }
    }
    let total = endpoints.len();
    let set_size =
        cluster_set_size(total, nodes.len()).ok_or(TopologyError::NoSetSize { drives: total, nodes: nodes.len() })?;
    let layout = super::sets_of(total, set_size, parity)?;
    let nodes: Vec<NodeInfo> =
        nodes.into_iter().zip(node_drives).map(|((host, port, _), drives)| NodeInfo { host, port, drives }).collect();
    let local = match listen {
        Some(listen) => {
            nodes.iter().position(|n| is_this_node(&n.host, n.port, listen)).ok_or(TopologyError::NotMine(listen))?
        }
        None => 0,
    };
    let fingerprint = fingerprint(&expanded, parity);
    Ok(Topology { endpoints, nodes, local, layout, fingerprint, distributed: true })
}

/// One node on plain paths.
/// One node on plain paths (the drives of a standalone server).
pub fn local_topology(drives: &[PathBuf], parity: Option<usize>) -> Result<Topology, TopologyError> {
    let layout = super::layout(drives, parity)?;
    let texts: Vec<String> = drives.iter().map(|p| p.display().to_string()).collect();
    let endpoints =
        drives.iter().zip(&texts).map(|(p, text)| Endpoint { node: 0, path: p.clone(), text: text.clone() }).collect();
    let nodes = vec![NodeInfo { host: "localhost".into(), port: 0, drives: (0..drives.len()).collect() }];
    Ok(Topology { endpoints, nodes, local: 0, layout, fingerprint: fingerprint(&texts, parity), distributed: false })
}

/// The largest set size in 2..=16 that divides the drive count and spreads evenly
/// over the nodes: a multiple of the node count (each node gives each set the same
/// number of drives) or a divisor of it (each set on distinct nodes).
pub fn cluster_set_size(drives: usize, nodes: usize) -> Option<usize> {
    if drives == 1 {
        return Some(1);
    }
    (2..=MAX_SET_DRIVES)
        .rev()
        .find(|s| drives.is_multiple_of(*s) && (s.is_multiple_of(nodes) || nodes.is_multiple_of(*s)))
}

fn is_url(arg: &str) -> bool {
    arg.starts_with("http://") || arg.starts_with("https://")
}

/// `http://host:port/path` into its parts; the port defaults to 9000 as in MinIO.
fn parse_url(arg: &str) -> Result<(String, u16, PathBuf), TopologyError> {
    let bad = || TopologyError::BadUrl(arg.to_string());
    let rest = arg.strip_prefix("http://").ok_or_else(|| {
        TopologyError::BadUrl(format!("{arg} (https between nodes is not supported; use http:// endpoints)"))
    })?;
    let slash = rest.find('/').ok_or_else(bad)?;
    let (authority, path) = rest.split_at(slash);
    if path.len() < 2 || path.contains("/../") || path.ends_with("/..") {
        return Err(bad());
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, p) = v6.split_once(']').ok_or_else(bad)?;
        (h.to_string(), p.strip_prefix(':').unwrap_or(""))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p),
            None => (authority.to_string(), ""),
        }
    };
    let port = if port.is_empty() { 9000 } else { port.parse::<u16>().map_err(|_| bad())? };
    if host.is_empty() || port == 0 {
        return Err(bad());
    }
    Ok((host.to_ascii_lowercase(), port, PathBuf::from(path)))
}

/// Addresses a host name stands for; empty when it does not resolve (yet).
fn resolve(host: &str) -> Vec<IpAddr> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return vec![ip];
    }
    (host, 0u16).to_socket_addrs().map(|a| a.map(|s| s.ip()).collect()).unwrap_or_default()
}

fn same_machine(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    let (ra, rb) = (resolve(a), resolve(b));
    ra.iter().any(|ip| rb.contains(ip) || (ip.is_loopback() && rb.iter().any(|o| o.is_loopback())))
}

/// Whether `host:port` names this process: same port as we listen on, and an
/// address of this machine (one we can bind) that we listen on.
fn is_this_node(host: &str, port: u16, listen: SocketAddr) -> bool {
    if port != listen.port() {
        return false;
    }
    resolve(host).into_iter().any(|ip| {
        (listen.ip().is_unspecified() || listen.ip() == ip) && std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
    })
}

fn fingerprint(args: &[String], parity: Option<usize>) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for a in args {
        h.update(a.as_bytes());
        h.update(b"\n");
    }
    h.update(format!("parity={parity:?}").as_bytes());
    h.digest()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listen(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn four_nodes_four_drives_with_ellipses() {
        let t = parse(&args(&["http://127.0.0.1:{9001...9004}/tmp/d{1...4}"]), None, listen(9002)).unwrap_err();
        // Same directories on the same machine for four nodes: refused.
        assert!(matches!(t, TopologyError::SameDirectory(..)), "{t}");
        let t = parse(&args(&["http://127.0.0.{1...4}:9000/mnt/disk{1...4}"]), None, listen(9000)).unwrap();
        assert_eq!(t.nodes.len(), 4);
        assert_eq!(t.local, 0);
        assert_eq!((t.layout.set_size, t.layout.data, t.layout.parity), (16, 12, 4));
        // Interleaved: drive k of every node in turn.
        assert_eq!(t.endpoints[1].node, 1);
        assert_eq!(t.nodes[1].drives, vec![1, 5, 9, 13]);
    }

    #[test]
    fn listed_one_by_one_on_one_machine() {
        let list: Vec<String> =
            (1..=4).flat_map(|n| (1..=2).map(move |d| format!("http://127.0.0.1:900{n}/tmp/n{n}/d{d}"))).collect();
        let t = parse(&list, None, listen(9003)).unwrap();
        assert_eq!(t.local, 2);
        assert_eq!((t.layout.set_size, t.layout.data, t.layout.parity, t.layout.write_quorum()), (8, 4, 4, 5));
        assert_eq!(t.local_drives(), &[2, 6]);
        assert_eq!(t.local_slot(6), Some(1));
        assert_eq!(t.nodes[0].address(), "127.0.0.1:9001");
        let one: Vec<String> = (1..=4).map(|n| format!("http://127.0.0.1:900{n}/tmp/n{n}/d1")).collect();
        let t = parse(&one, None, listen(9001)).unwrap();
        assert_eq!((t.layout.set_size, t.layout.data, t.layout.parity), (4, 2, 2));
        // Another port: not a node of this cluster.
        assert_eq!(parse(&one, None, listen(9009)).unwrap_err(), TopologyError::NotMine(listen(9009)));
    }

    #[test]
    fn refusals() {
        let e = parse(&args(&["http://127.0.0.1:9001/a", "/b"]), None, listen(9001)).unwrap_err();
        assert!(matches!(e, TopologyError::Mixed(..)));
        let e = parse(&args(&["http://n{1...2}:9000/a{1...2}", "http://m{1...2}:9000/a{1...2}"]), None, listen(9000))
            .unwrap_err();
        assert_eq!(e, TopologyError::Pools(2));
        let e = parse(&args(&["http://127.0.0.1:9001/a", "http://127.0.0.1:9001/a"]), None, listen(9001)).unwrap_err();
        assert!(matches!(e, TopologyError::Duplicate(_)));
        let e = parse(
            &args(&["http://127.0.0.1:9001/a", "http://127.0.0.1:9001/b", "http://127.0.0.1:9002/c"]),
            None,
            listen(9001),
        )
        .unwrap_err();
        assert!(matches!(e, TopologyError::Uneven(_)), "{e}");
        let e = parse(&args(&["http://127.0.0.1:9001/a", "http://127.0.0.1:9002/a"]), None, listen(9001)).unwrap_err();
        assert!(matches!(e, TopologyError::SameDirectory(..)));
        let e = parse(&args(&["http://127.0.0.1:9001", "http://127.0.0.1:9002/a"]), None, listen(9001)).unwrap_err();
        assert!(matches!(e, TopologyError::BadUrl(_)));
        let list: Vec<String> = (1..=3).map(|n| format!("http://127.0.0.1:900{n}/tmp/n{n}/d1")).collect();
        let t = parse(&list, None, listen(9001)).unwrap();
        assert_eq!(t.layout.set_size, 3);
        let list: Vec<String> = (1..=5).map(|n| format!("http://127.0.0.1:900{n}/tmp/n{n}/d1")).collect();
        assert_eq!(t.nodes.len(), 3);
        assert!(parse(&list, None, listen(9001)).is_ok());
        let seventeen: Vec<String> = (1..=17).map(|n| format!("http://127.0.0.1:{}/x{n}", 9000 + n)).collect();
        let e = parse(&seventeen, None, listen(9001)).unwrap_err();
        assert!(matches!(e, TopologyError::NoSetSize { .. }), "{e}");
    }

    #[test]
    fn plain_paths_are_one_node() {
        let t = parse(&args(&["/tmp/x{1...4}"]), None, listen(9000)).unwrap();
        assert!(!t.distributed);
        assert_eq!(t.local_drives(), &[0, 1, 2, 3]);
        assert_eq!(t.layout.set_size, 4);
    }

    #[test]
    fn fingerprint_follows_arguments() {
        let a: Vec<String> = (1..=4).map(|n| format!("http://127.0.0.1:900{n}/tmp/n{n}/d1")).collect();
        let mut b = a.clone();
        b.swap(0, 1);
        let ta = parse(&a, None, listen(9001)).unwrap();
        let tb = parse(&b, None, listen(9001)).unwrap();
        assert_ne!(ta.fingerprint, tb.fingerprint);
        assert_ne!(ta.fingerprint, parse(&a, Some(1), listen(9001)).unwrap().fingerprint);
    }
}
