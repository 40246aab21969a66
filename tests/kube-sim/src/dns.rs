//! A small cluster DNS server (A records over UDP) for the pods' loopback
//! addresses:
//! - `SVC.NS.svc.cluster.local` → the Service's ClusterIP (a loopback
//!   address the simulated kube-proxy listens on), or for a headless Service
//!   the IPs of the ready pods it selects (every selected pod with
//!   `publishNotReadyAddresses`);
//! - `HOSTNAME.SUBDOMAIN.NS.svc.cluster.local` → the pod with that
//!   `spec.hostname` and `spec.subdomain` (StatefulSet pods behind their
//!   headless Service).
//!
//! Other names get NXDOMAIN; AAAA and other types of a known name get an
//! empty answer. Processes the kubelet starts find the server in
//! `QUIVER_SIM_DNS` (`127.0.0.1:PORT`).

use std::net::Ipv4Addr;
use std::sync::Arc;

use serde_json::Value;
use tokio::net::UdpSocket;

use crate::Sim;
use crate::api::meta_str;
use crate::controllers::pod_ready;
use crate::selectors::LabelSelector;

/// The cluster domain.
pub const DOMAIN: &str = "svc.cluster.local";

/// The addresses a name resolves to; `None`: no such name.
pub fn resolve(sim: &Sim, name: &str) -> Option<Vec<Ipv4Addr>> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let prefix = name.strip_suffix(DOMAIN)?.strip_suffix('.')?;
    let parts: Vec<&str> = prefix.split('.').collect();
    let ip_of = |p: &Value| p.pointer("/status/podIP").and_then(Value::as_str).and_then(|s| s.parse().ok());
    let alive = |p: &Value| p.pointer("/metadata/deletionTimestamp").is_none();
    match parts.as_slice() {
        [svc, ns] => {
            let s = sim.store.get("services", ns, svc)?;
            if let Some(ip) =
                s.pointer("/spec/clusterIP").and_then(Value::as_str).and_then(|ip| ip.parse::<Ipv4Addr>().ok())
            {
                return Some(vec![ip]);
            }
            let selector = s.pointer("/spec/selector")?;
            let sel = LabelSelector::from_object(&serde_json::json!({"matchLabels": selector}));
            if sel.is_empty() {
                return Some(vec![]);
            }
            let not_ready_too = s.pointer("/spec/publishNotReadyAddresses").and_then(Value::as_bool) == Some(true);
            let (pods, _) = sim.store.list("pods", Some(ns));
            Some(
                pods.iter()
                    .filter(|p| sel.matches(p) && alive(p) && (not_ready_too || pod_ready(p)))
                    .filter_map(ip_of)
                    .collect(),
            )
        }
        [host, sub, ns] => {
            let (pods, _) = sim.store.list("pods", Some(ns));
            let p = pods.iter().find(|p| {
                alive(p)
                    && p.pointer("/spec/hostname").and_then(Value::as_str) == Some(*host)
                    && p.pointer("/spec/subdomain").and_then(Value::as_str) == Some(*sub)
            })?;
            Some(ip_of(p).into_iter().collect())
        }
        _ => None,
    }
}

/// Parses the question of a query: (id, name, qtype, end of the question).
fn parse_query(q: &[u8]) -> Option<(u16, String, u16, usize)> {
    if q.len() < 12 || u16::from_be_bytes([q[4], q[5]]) != 1 {
        return None;
    }
    let id = u16::from_be_bytes([q[0], q[1]]);
    let mut pos = 12;
    let mut labels = Vec::new();
    loop {
        let len = *q.get(pos)? as usize;
        pos += 1;
        if len == 0 {
            break;
        }
        if len & 0xc0 != 0 {
            return None;
        }
        labels.push(String::from_utf8_lossy(q.get(pos..pos + len)?).into_owned());
        pos += len;
    }
    let qtype = u16::from_be_bytes([*q.get(pos)?, *q.get(pos + 1)?]);
    Some((id, labels.join("."), qtype, pos + 4))
}

/// The answer to one query packet.
pub fn answer(sim: &Sim, q: &[u8]) -> Option<Vec<u8>> {
    let (id, name, qtype, end) = parse_query(q)?;
    let ips = resolve(sim, &name);
    let answers: Vec<Ipv4Addr> = match (&ips, qtype) {
        (Some(ips), 1) => ips.clone(),
        _ => vec![],
    };
    let rcode: u16 = if ips.is_none() { 3 } else { 0 };
    let mut out = Vec::with_capacity(end + answers.len() * 16);
    out.extend_from_slice(&id.to_be_bytes());
    // QR, opcode 0, AA, RD copied, RA.
    let rd = u16::from(q[2] & 1) << 8;
    out.extend_from_slice(&(0x8400 | rd | 0x0080 | rcode).to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&(answers.len() as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&q[12..end]);
    for ip in answers {
        out.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4]);
        out.extend_from_slice(&ip.octets());
    }
    Some(out)
}

/// Serves DNS on `socket` until the simulator stops.
pub async fn serve(sim: Arc<Sim>, socket: UdpSocket) {
    let mut buf = [0u8; 512];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        if let Some(reply) = answer(&sim, &buf[..n]) {
            let _ = socket.send_to(&reply, from).await;
        }
    }
}

/// The name of a pod's DNS record, when it has one (for logs and tests).
pub fn pod_record(pod: &Value) -> Option<String> {
    Some(format!(
        "{}.{}.{}.{DOMAIN}",
        pod.pointer("/spec/hostname")?.as_str()?,
        pod.pointer("/spec/subdomain")?.as_str()?,
        meta_str(pod, "namespace")?
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        for l in name.split('.') {
            q.push(l.len() as u8);
            q.extend_from_slice(l.as_bytes());
        }
        q.push(0);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&1u16.to_be_bytes());
        q
    }

    #[test]
    fn queries_parse_and_unknown_names_are_nxdomain() {
        let sim = Sim::new(Default::default());
        let (id, name, qtype, _) = parse_query(&query("a.b.svc.cluster.local", 1)).unwrap();
        assert_eq!((id, name.as_str(), qtype), (0x1234, "a.b.svc.cluster.local", 1));
        let reply = answer(&sim, &query("nothing.default.svc.cluster.local", 1)).unwrap();
        assert_eq!(reply[3] & 0x0f, 3, "NXDOMAIN");
        assert_eq!(&reply[0..2], &[0x12, 0x34]);
    }
}
