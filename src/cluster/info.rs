//! What `basalt admin info` (and the console's cluster page) shows: every node,
//! whether this node reaches it, its drives with state and space, the erasure
//! sets and whether each has read and write quorum now. Gathered by the node
//! asked: its own drives directly, the others' over the inter-node protocol.

use std::rc::Rc;
use std::time::Duration;

use futures_util::future::join_all;
use serde::{Deserialize, Serialize};

use super::serve::local_status;
use super::wire::{DriveStatus, Request, Response};
use crate::runtime::CoreCtx;
use crate::units::human_bytes;

/// How long one node may take to describe its drives.
const INFO_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterInfo {
    pub version: String,
    pub deployment_id: String,
    /// The node that answered (1-based, as in messages).
    pub this_node: usize,
    pub nodes: Vec<NodeStatus>,
    pub sets: Vec<SetStatus>,
    /// Every set can serve reads / writes with the drives reachable now.
    pub read_quorum: bool,
    pub write_quorum: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeStatus {
    pub node: usize,
    pub address: String,
    pub online: bool,
    pub drives: Vec<DriveInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DriveInfo {
    /// 1-based global drive number.
    pub drive: usize,
    pub endpoint: String,
    pub state: String,
    pub total_bytes: u64,
    pub free_bytes: u64,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SetStatus {
    pub set: usize,
    pub data: usize,
    pub parity: usize,
    /// 1-based global drive numbers, in set order.
    pub drives: Vec<usize>,
    pub online: usize,
    pub read_quorum: usize,
    pub write_quorum: usize,
}

/// Describes the cluster as this node sees it now.
pub async fn gather(ctx: &Rc<CoreCtx>) -> ClusterInfo {
    let topo = ctx.core.topology().clone();
    let peers = ctx.core.peers().to_vec();
    let mine = local_status(ctx).await;
    let theirs = join_all(peers.iter().map(|p| p.call(Request::Info, INFO_TIMEOUT))).await;
    let mut by_drive: Vec<Option<DriveStatus>> = vec![None; topo.endpoints.len()];
    let mut online_nodes = vec![false; topo.nodes.len()];
    online_nodes[topo.local] = true;
    let answers = std::iter::once(Some(mine)).chain(theirs.into_iter().map(|r| match r {
        Ok(Response::Info(list)) => Some(list),
        _ => None,
    }));
    let nodes_in_order = std::iter::once(topo.local).chain(peers.iter().map(|p| p.node));
    for (node, answer) in nodes_in_order.zip(answers) {
        if let Some(list) = answer {
            online_nodes[node] = true;
            for s in list {
                let d = s.drive as usize;
                if d < by_drive.len() && topo.endpoints[d].node == node {
                    by_drive[d] = Some(s);
                }
            }
        }
    }
    let nodes = topo
        .nodes
        .iter()
        .enumerate()
        .map(|(n, info)| NodeStatus {
            node: n + 1,
            address: if topo.distributed { info.address() } else { "local".into() },
            online: online_nodes[n],
            drives: info
                .drives
                .iter()
                .map(|&d| {
                    let endpoint = topo.endpoints[d].text.clone();
                    match &by_drive[d] {
                        Some(s) => DriveInfo {
                            drive: d + 1,
                            endpoint,
                            state: if s.online { "online" } else { "faulty" }.into(),
                            total_bytes: s.total_bytes,
                            free_bytes: s.free_bytes,
                            error: s.error.clone(),
                        },
                        None => DriveInfo {
                            drive: d + 1,
                            endpoint,
                            state: "offline".into(),
                            total_bytes: 0,
                            free_bytes: 0,
                            error: Some("its node cannot be reached".into()),
                        },
                    }
                })
                .collect(),
        })
        .collect();
    let layout = &topo.layout;
    let sets: Vec<SetStatus> = layout
        .sets
        .iter()
        .enumerate()
        .map(|(i, drives)| SetStatus {
            set: i + 1,
            data: layout.data,
            parity: layout.parity,
            drives: drives.iter().map(|d| d + 1).collect(),
            online: drives.iter().filter(|d| by_drive[**d].as_ref().is_some_and(|s| s.online)).count(),
            read_quorum: layout.read_quorum(),
            write_quorum: layout.write_quorum(),
        })
        .collect();
    ClusterInfo {
        version: env!("CARGO_PKG_VERSION").to_string(),
        deployment_id: ctx.objects.deployment_id(),
        this_node: topo.local + 1,
        read_quorum: sets.iter().all(|s| s.online >= s.read_quorum),
        write_quorum: sets.iter().all(|s| s.online >= s.write_quorum),
        nodes,
        sets,
    }
}

impl ClusterInfo {
    /// The report `basalt admin info` prints.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let online = self.nodes.iter().filter(|n| n.online).count();
        out.push_str(&format!(
            "basalt {} (deployment {}), asked node {}\n",
            self.version,
            if self.deployment_id.is_empty() { "-" } else { &self.deployment_id },
            self.this_node
        ));
        out.push_str(&format!("Nodes: {online} of {} online\n", self.nodes.len()));
        for n in &self.nodes {
            out.push_str(&format!("  node {} {} {}\n", n.node, n.address, if n.online { "online" } else { "OFFLINE" }));
            for d in &n.drives {
                let space = if d.total_bytes > 0 {
                    format!("{} free of {}", human_bytes(d.free_bytes), human_bytes(d.total_bytes))
                } else {
                    "-".into()
                };
                out.push_str(&format!("    drive {:>3} {:<8} {space:<28} {}\n", d.drive, d.state, d.endpoint));
                if let Some(e) = &d.error {
                    out.push_str(&format!("              {e}\n"));
                }
            }
        }
        for s in &self.sets {
            let state = if s.online >= s.write_quorum {
                "read+write"
            } else if s.online >= s.read_quorum {
                "READ ONLY"
            } else {
                "UNAVAILABLE"
            };
            out.push_str(&format!(
                "Set {}: {} data + {} parity, drives {:?}: {} of {} online (read quorum {}, write quorum {}): {state}\n",
                s.set,
                s.data,
                s.parity,
                s.drives,
                s.online,
                s.drives.len(),
                s.read_quorum,
                s.write_quorum
            ));
        }
        out.push_str(&format!(
            "Quorum: read {}, write {}\n",
            if self.read_quorum { "yes" } else { "NO" },
            if self.write_quorum { "yes" } else { "NO" }
        ));
        out
    }
}
