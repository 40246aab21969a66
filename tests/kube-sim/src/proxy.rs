//! kube-proxy: Service ClusterIPs are loopback addresses (127.C.x.y) and every
//! port of a Service with a selector gets a TCP listener on
//! `CLUSTER_IP:PORT` that forwards each connection to a ready endpoint's
//! `POD_IP:TARGET_PORT` (round robin over the Endpoints object). Named target
//! ports are resolved from the pods' container ports. Ports below 1024 need
//! the privilege to bind them (CI runs as root); a failed bind is logged.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::Sim;
use crate::api::meta_str;

/// The listeners by (namespace, service, cluster address).
#[derive(Default)]
pub struct Proxies {
    listeners: Mutex<HashMap<(String, String, SocketAddr), JoinHandle<()>>>,
}

impl Drop for Proxies {
    fn drop(&mut self) {
        if let Ok(l) = self.listeners.lock() {
            for h in l.values() {
                h.abort();
            }
        }
    }
}

/// Where a connection to `svc`'s `port` goes: the next ready endpoint.
fn backend(sim: &Sim, ns: &str, svc: &str, port: &Value, counter: &AtomicUsize) -> Option<SocketAddr> {
    let service = sim.store.get("services", ns, svc)?;
    let ports = service.pointer("/spec/ports")?.as_array()?;
    let sp = ports.iter().find(|p| p.get("port") == Some(port))?;
    let target = sp.get("targetPort").cloned().unwrap_or_else(|| port.clone());
    let eps = sim.store.get("endpoints", ns, svc)?;
    let addrs: Vec<&Value> = eps
        .get("subsets")?
        .as_array()?
        .iter()
        .flat_map(|s| s.get("addresses").and_then(Value::as_array).into_iter().flatten())
        .collect();
    if addrs.is_empty() {
        return None;
    }
    let a = addrs[counter.fetch_add(1, Ordering::Relaxed) % addrs.len()];
    let ip: std::net::IpAddr = a.get("ip")?.as_str()?.parse().ok()?;
    let port = match &target {
        Value::Number(n) => n.as_u64()? as u16,
        Value::String(name) => {
            let pod_name = a.pointer("/targetRef/name")?.as_str()?;
            let pod = sim.store.get("pods", ns, pod_name)?;
            pod.pointer("/spec/containers")?
                .as_array()?
                .iter()
                .flat_map(|c| c.get("ports").and_then(Value::as_array).into_iter().flatten())
                .find(|p| p.get("name").and_then(Value::as_str) == Some(name.as_str()))?
                .get("containerPort")?
                .as_u64()? as u16
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

async fn serve(sim: Arc<Sim>, listener: TcpListener, ns: String, svc: String, port: Value) {
    let counter = AtomicUsize::new(0);
    loop {
        let Ok((mut inbound, _)) = listener.accept().await else {
            continue;
        };
        let Some(to) = backend(&sim, &ns, &svc, &port, &counter) else {
            // No ready endpoint: the connection is refused, as kube-proxy's REJECT does.
            drop(inbound);
            continue;
        };
        tokio::spawn(async move {
            if let Ok(mut outbound) = TcpStream::connect(to).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        });
    }
}

/// Brings the listeners in line with the Services.
pub async fn sync(sim: &Arc<Sim>) {
    let (services, _) = sim.store.list("services", None);
    let mut wanted: Vec<(String, String, SocketAddr, Value)> = Vec::new();
    for s in &services {
        let Some(ip) =
            s.pointer("/spec/clusterIP").and_then(Value::as_str).and_then(|ip| ip.parse::<std::net::IpAddr>().ok())
        else {
            continue;
        };
        if !ip.is_loopback() || s.pointer("/spec/selector").is_none() {
            continue;
        }
        for p in s.pointer("/spec/ports").and_then(Value::as_array).into_iter().flatten() {
            if let Some(port) = p.get("port").and_then(Value::as_u64) {
                wanted.push((
                    meta_str(s, "namespace").unwrap_or_default().to_string(),
                    meta_str(s, "name").unwrap_or_default().to_string(),
                    SocketAddr::new(ip, port as u16),
                    p["port"].clone(),
                ));
            }
        }
    }
    let missing: Vec<(String, String, SocketAddr, Value)> = {
        let mut l = sim.proxies.listeners.lock().unwrap_or_else(|e| e.into_inner());
        l.retain(|k, h| {
            let keep = wanted.iter().any(|(ns, svc, addr, _)| (ns, svc, addr) == (&k.0, &k.1, &k.2));
            if !keep {
                h.abort();
            }
            keep
        });
        wanted.into_iter().filter(|(ns, svc, addr, _)| !l.contains_key(&(ns.clone(), svc.clone(), *addr))).collect()
    };
    for (ns, svc, addr, port) in missing {
        match TcpListener::bind(addr).await {
            Ok(listener) => {
                tracing::debug!(%ns, %svc, %addr, "service listener");
                let h = tokio::spawn(serve(sim.clone(), listener, ns.clone(), svc.clone(), port));
                sim.proxies.listeners.lock().unwrap_or_else(|e| e.into_inner()).insert((ns, svc, addr), h);
            }
            Err(e) => {
                tracing::warn!(%ns, %svc, %addr, error = %e, "cannot listen on the service address");
                // Remember the failure so it is not retried on every change.
                sim.proxies
                    .listeners
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert((ns, svc, addr), tokio::spawn(async {}));
            }
        }
    }
}

/// Runs the proxy until the simulator stops.
pub async fn run(sim: Arc<Sim>) {
    let mut rx = sim.store.follow();
    sync(&sim).await;
    loop {
        match rx.recv().await {
            Ok(c) if c.key != "services" => continue,
            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
        while rx.try_recv().is_ok() {}
        sync(&sim).await;
    }
}
