//! Host names to addresses, for the worker Service and the operator's resume
//! endpoint: the system resolver, or a given DNS server asked directly (the
//! simulated control plane's, whose cluster names the system does not know).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;

/// Resolves host names; cheap to clone.
#[derive(Clone)]
pub struct NameResolver(Inner);

#[derive(Clone)]
enum Inner {
    /// The operating system's resolver (`getaddrinfo`).
    System,
    /// One DNS server, asked for A records over UDP, with no cache: every
    /// lookup sees the pods ready now.
    Server(SocketAddr, Arc<TokioResolver>),
}

/// Why a lookup found no address.
#[derive(Debug)]
pub enum LookupError {
    /// The name does not exist or has no address (normal while a cluster is scaled to zero).
    NoSuchName(String),
    /// Anything else (server unreachable, malformed answer).
    Failed(String),
}

impl std::fmt::Display for LookupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LookupError::NoSuchName(e) | LookupError::Failed(e) => f.write_str(e),
        }
    }
}

impl NameResolver {
    /// The system resolver.
    pub fn system() -> NameResolver {
        NameResolver(Inner::System)
    }

    /// A resolver asking `server` when given, else the system resolver.
    pub fn new(server: Option<SocketAddr>) -> NameResolver {
        let Some(server) = server else { return NameResolver::system() };
        let mut conn = ConnectionConfig::udp();
        conn.port = server.port();
        let ns = NameServerConfig::new(server.ip(), true, vec![conn]);
        let mut opts = ResolverOpts::default();
        opts.cache_size = 0;
        opts.ip_strategy = LookupIpStrategy::Ipv4Only;
        opts.timeout = Duration::from_secs(2);
        opts.attempts = 1;
        let resolver = TokioResolver::builder_with_config(
            ResolverConfig::from_name_servers(vec![ns]),
            TokioRuntimeProvider::default(),
        )
        .with_options(opts)
        .build()
        .expect("a resolver of one UDP name server builds");
        NameResolver(Inner::Server(server, Arc::new(resolver)))
    }

    /// The DNS server asked, if not the system's.
    pub fn server(&self) -> Option<SocketAddr> {
        match &self.0 {
            Inner::System => None,
            Inner::Server(s, _) => Some(*s),
        }
    }

    /// The addresses of `host` (a name or an IP literal), with `port`.
    pub async fn lookup(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, LookupError> {
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = literal.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        match &self.0 {
            Inner::System => match tokio::net::lookup_host((host, port)).await {
                Ok(addrs) => Ok(addrs.collect()),
                Err(e) => {
                    let msg = e.to_string();
                    if msg.contains("not known") || msg.contains("No address associated") {
                        Err(LookupError::NoSuchName(msg))
                    } else {
                        Err(LookupError::Failed(msg))
                    }
                }
            },
            Inner::Server(_, r) => {
                // Cluster names are fully qualified: no search domain to try.
                let fqdn = if host.ends_with('.') { host.to_string() } else { format!("{host}.") };
                match r.lookup_ip(fqdn.as_str()).await {
                    Ok(ips) => Ok(ips.iter().map(|ip| SocketAddr::new(ip, port)).collect()),
                    Err(e) if e.is_no_records_found() => Err(LookupError::NoSuchName(e.to_string())),
                    Err(e) => Err(LookupError::Failed(e.to_string())),
                }
            }
        }
    }

    /// Connects to `host:port`, trying each address in turn.
    pub async fn connect(&self, authority: &str) -> std::io::Result<tokio::net::TcpStream> {
        let bad = || std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{authority:?} is not HOST:PORT"));
        let (host, port) = authority.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        let addrs = self
            .lookup(host, port)
            .await
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::NotFound, format!("resolving {host}: {e}")))?;
        let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, format!("{host} has no address"));
        for a in addrs {
            match tokio::net::TcpStream::connect(a).await {
                Ok(s) => return Ok(s),
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use tokio::sync::watch;

    /// What the test DNS server answers for its one name.
    #[derive(Clone)]
    pub(crate) enum Answer {
        Addresses(Vec<Ipv4Addr>),
        NxDomain,
    }

    /// A DNS server on 127.0.0.1 that knows one name (A records; other types
    /// get an empty answer); other names are NXDOMAIN. Returns its address;
    /// dropping the sender stops it answering.
    pub(crate) async fn dns_server(name: &'static str, answer: watch::Receiver<Answer>) -> SocketAddr {
        let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = sock.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            loop {
                let Ok((n, from)) = sock.recv_from(&mut buf).await else { return };
                if answer.has_changed().is_err() {
                    return;
                }
                let q = &buf[..n];
                // The question: labels from byte 12, then type and class.
                let mut pos = 12;
                let mut labels = Vec::new();
                while q[pos] != 0 {
                    let len = q[pos] as usize;
                    labels.push(String::from_utf8_lossy(&q[pos + 1..pos + 1 + len]).to_ascii_lowercase());
                    pos += 1 + len;
                }
                let end = pos + 5;
                let qtype = u16::from_be_bytes([q[pos + 1], q[pos + 2]]);
                let (rcode, ips) = match (labels.join(".") == name, answer.borrow().clone()) {
                    (true, Answer::Addresses(ips)) => (0u8, if qtype == 1 { ips } else { vec![] }),
                    _ => (3, vec![]),
                };
                let mut out = q[..2].to_vec();
                out.extend_from_slice(&[0x81 | (q[2] & 1), 0x80 | rcode, 0, 1, 0, ips.len() as u8, 0, 0, 0, 0]);
                out.extend_from_slice(&q[12..end]);
                for ip in ips {
                    out.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4]);
                    out.extend_from_slice(&ip.octets());
                }
                let _ = sock.send_to(&out, from).await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn a_given_server_answers_names_the_system_does_not_know() {
        const NAME: &str = "resume.quiver.svc.cluster.local";
        let (_answer, rx) = watch::channel(Answer::Addresses(vec![Ipv4Addr::LOCALHOST]));
        let server = dns_server(NAME, rx).await;
        let r = NameResolver::new(Some(server));
        assert_eq!(r.server(), Some(server));
        assert_eq!(r.lookup(NAME, 8081).await.unwrap(), vec!["127.0.0.1:8081".parse().unwrap()]);
        assert!(matches!(r.lookup("other.quiver.svc.cluster.local", 1).await, Err(LookupError::NoSuchName(_))));
        // IP literals need no server.
        assert_eq!(r.lookup("127.0.0.9", 1).await.unwrap(), vec!["127.0.0.9:1".parse().unwrap()]);
        // The system resolver does not know the name.
        assert!(NameResolver::system().lookup(NAME, 8081).await.is_err());

        // connect() reaches a listener through the name.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let stream = r.connect(&format!("{NAME}:{port}")).await.unwrap();
        assert_eq!(stream.peer_addr().unwrap().port(), port);
    }
}
