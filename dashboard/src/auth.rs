//! Token login without shared state: the token is exchanged for a signed,
//! expiring session cookie that every replica can verify on its own.
//!
//! The signing key is `HMAC-SHA256(token, "quiver-session-v1[:epoch]")`, so every
//! replica given the same token (and epoch) derives the same key, and rotating the
//! token or bumping the epoch invalidates every session. A cookie is
//! `v1.<issued>.<expires>.<nonce>.<mac>`, where the MAC covers everything before it.
//! Failed token checks are rate-limited per client address.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::time::Instant;

use crate::secret::Secret;

type HmacSha256 = Hmac<Sha256>;

/// Name of the session cookie.
pub const COOKIE_NAME: &str = "quiver_session";
const COOKIE_VERSION: &str = "v1";
/// Tolerated clock difference between replicas, seconds.
const CLOCK_SKEW_SECS: u64 = 60;

/// Verifies tokens and issues and verifies session cookies.
pub struct Auth {
    token_digest: [u8; 32],
    session_key: [u8; 32],
    ttl: Duration,
}

/// Why a session cookie was refused (for logs; the client only sees 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookieError {
    /// Not of the form `v1.issued.expires.nonce.mac`.
    Malformed,
    /// The MAC does not match: tampered, or signed with another token or epoch.
    BadSignature,
    /// Past its expiry (or issued longer than the current TTL ago).
    Expired,
    /// Issued in the future.
    FromTheFuture,
}

/// A verified session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    /// When it was issued, unix seconds.
    pub issued: u64,
    /// When it expires, unix seconds.
    pub expires: u64,
}

impl Auth {
    /// Derives the keys from the token. `epoch` is the revocation epoch.
    pub fn new(token: &Secret, epoch: u64, ttl: Duration) -> Auth {
        let token_digest: [u8; 32] = Sha256::digest(token.expose().as_bytes()).into();
        let mut mac = HmacSha256::new_from_slice(token.expose().as_bytes()).expect("HMAC accepts keys of any length");
        mac.update(b"quiver-session-v1");
        if epoch != 0 {
            mac.update(format!(":{epoch}").as_bytes());
        }
        let session_key: [u8; 32] = mac.finalize().into_bytes().into();
        Auth { token_digest, session_key, ttl }
    }

    /// Session lifetime.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// True when `candidate` is the token. Constant time: both sides are hashed to
    /// fixed-length digests first, so not even the length leaks.
    pub fn check_token(&self, candidate: &str) -> bool {
        let d: [u8; 32] = Sha256::digest(candidate.as_bytes()).into();
        d.ct_eq(&self.token_digest).into()
    }

    fn mac(&self, payload: &str) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.session_key).expect("32-byte key");
        mac.update(payload.as_bytes());
        mac
    }

    /// Issues a session cookie value at `now` (unix seconds).
    pub fn issue(&self, now: u64) -> String {
        let nonce: [u8; 16] = rand::random();
        self.issue_with_nonce(now, &nonce)
    }

    fn issue_with_nonce(&self, now: u64, nonce: &[u8; 16]) -> String {
        let expires = now + self.ttl.as_secs().max(1);
        let payload = format!("{COOKIE_VERSION}.{now}.{expires}.{}", hex::encode(nonce));
        let sig = self.mac(&payload).finalize().into_bytes();
        format!("{payload}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    /// Verifies a session cookie value at `now` (unix seconds).
    pub fn verify(&self, value: &str, now: u64) -> Result<Session, CookieError> {
        if value.len() > 256 {
            return Err(CookieError::Malformed);
        }
        let (payload, sig) = value.rsplit_once('.').ok_or(CookieError::Malformed)?;
        let sig = URL_SAFE_NO_PAD.decode(sig).map_err(|_| CookieError::Malformed)?;
        // Signature first: nothing unauthenticated is interpreted.
        self.mac(payload).verify_slice(&sig).map_err(|_| CookieError::BadSignature)?;
        let mut parts = payload.split('.');
        let (Some(version), Some(issued), Some(expires), Some(_nonce), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(CookieError::Malformed);
        };
        if version != COOKIE_VERSION {
            return Err(CookieError::Malformed);
        }
        let issued: u64 = issued.parse().map_err(|_| CookieError::Malformed)?;
        let expires: u64 = expires.parse().map_err(|_| CookieError::Malformed)?;
        if issued > now + CLOCK_SKEW_SECS {
            return Err(CookieError::FromTheFuture);
        }
        // A TTL shortened by configuration applies to cookies already issued.
        if now >= expires || now >= issued.saturating_add(self.ttl.as_secs()) {
            return Err(CookieError::Expired);
        }
        Ok(Session { issued, expires })
    }

    /// The `Set-Cookie` value that starts a session.
    pub fn set_cookie(&self, value: &str, secure: bool) -> String {
        format!(
            "{COOKIE_NAME}={value}; Path=/; Max-Age={}; HttpOnly; SameSite=Strict{}",
            self.ttl.as_secs(),
            if secure { "; Secure" } else { "" }
        )
    }
}

/// The `Set-Cookie` value that ends a session.
pub fn clear_cookie(secure: bool) -> String {
    format!("{COOKIE_NAME}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict{}", if secure { "; Secure" } else { "" })
}

/// The session cookie's value, if the request carries one.
pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE_NAME)
        .map(|(_, v)| v.trim_matches('"'))
        .filter(|v| !v.is_empty())
}

/// What the `Authorization` header holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Bearer<'a> {
    /// No `Authorization` header.
    Absent,
    /// A Bearer token.
    Token(&'a str),
    /// Some other scheme, or garbage.
    Malformed,
}

/// Reads an `Authorization: Bearer <token>` header.
pub fn bearer(headers: &HeaderMap) -> Bearer<'_> {
    let Some(v) = headers.get(http::header::AUTHORIZATION) else {
        return Bearer::Absent;
    };
    let Ok(v) = v.to_str() else { return Bearer::Malformed };
    match v.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => {
            Bearer::Token(token.trim())
        }
        _ => Bearer::Malformed,
    }
}

/// The client address used for rate limiting: the peer address, or with
/// `trust_proxy` the last `X-Forwarded-For` entry (the one our proxy appended;
/// earlier entries are whatever the client chose to send).
pub fn client_ip(headers: &HeaderMap, peer: Option<SocketAddr>, trust_proxy: bool) -> IpAddr {
    if trust_proxy {
        let last = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .rfind(|s| !s.is_empty());
        if let Some(ip) = last.and_then(|s| s.parse::<IpAddr>().ok()) {
            return ip;
        }
    }
    peer.map(|p| p.ip()).unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
}

/// Rate limit of failed token checks: a token bucket per client (IPv6 clients per
/// /64, since one host usually owns the whole prefix).
pub struct LoginLimiter {
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
    burst: f64,
    refill: Duration,
    max_clients: usize,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl LoginLimiter {
    /// Allows `burst` failures at once, then one more every `refill`.
    pub fn new(burst: u32, refill: Duration) -> LoginLimiter {
        LoginLimiter {
            buckets: Mutex::new(HashMap::new()),
            burst: f64::from(burst.max(1)),
            refill,
            max_clients: 100_000,
        }
    }

    fn key(ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => {
                    let s = v6.segments();
                    IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
                }
            },
            v4 => v4,
        }
    }

    fn refilled(&self, b: Bucket, now: Instant) -> f64 {
        let gained = now.saturating_duration_since(b.updated).as_secs_f64() / self.refill.as_secs_f64();
        (b.tokens + gained).min(self.burst)
    }

    /// `Err(wait)` when the client has used up its failures and must wait.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let buckets = self.buckets.lock().expect("limiter lock");
        match buckets.get(&Self::key(ip)) {
            Some(b) => {
                let tokens = self.refilled(*b, now);
                if tokens >= 1.0 { Ok(()) } else { Err(self.refill.mul_f64(1.0 - tokens)) }
            }
            None => Ok(()),
        }
    }

    /// Records a failed attempt.
    pub fn record_failure(&self, ip: IpAddr, now: Instant) {
        let mut buckets = self.buckets.lock().expect("limiter lock");
        if buckets.len() >= self.max_clients {
            // Forget clients whose buckets have refilled: they hold no information.
            let full = self.refill.mul_f64(self.burst);
            buckets.retain(|_, b| now.saturating_duration_since(b.updated) < full);
            if buckets.len() >= self.max_clients {
                // Under a flood from many addresses, stay bounded rather than exact.
                buckets.clear();
            }
        }
        let key = Self::key(ip);
        let tokens = match buckets.get(&key) {
            Some(b) => self.refilled(*b, now),
            None => self.burst,
        };
        buckets.insert(key, Bucket { tokens: (tokens - 1.0).max(0.0), updated: now });
    }

    /// Number of clients tracked (for tests and metrics).
    pub fn tracked(&self) -> usize {
        self.buckets.lock().expect("limiter lock").len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Auth {
        Auth::new(&Secret::new("correct horse"), 0, Duration::from_secs(3600))
    }

    #[test]
    fn token_check_accepts_only_the_token() {
        let a = auth();
        assert!(a.check_token("correct horse"));
        assert!(!a.check_token("correct hors"));
        assert!(!a.check_token("correct horse "));
        assert!(!a.check_token(""));
    }

    #[test]
    fn issued_cookie_verifies_until_it_expires() {
        let a = auth();
        let c = a.issue(1_000_000);
        let s = a.verify(&c, 1_000_010).unwrap();
        assert_eq!(s.issued, 1_000_000);
        assert_eq!(s.expires, 1_003_600);
        assert_eq!(a.verify(&c, 1_003_599).map(|s| s.issued), Ok(1_000_000));
        assert_eq!(a.verify(&c, 1_003_600), Err(CookieError::Expired));
    }

    #[test]
    fn cookies_carry_a_random_nonce() {
        let a = auth();
        assert_ne!(a.issue(5), a.issue(5));
    }

    #[test]
    fn another_replica_with_the_same_token_accepts_the_cookie() {
        let c = auth().issue(100);
        assert!(auth().verify(&c, 101).is_ok());
    }

    #[test]
    fn rotating_the_token_or_the_epoch_invalidates_sessions() {
        let c = auth().issue(100);
        let other = Auth::new(&Secret::new("battery staple"), 0, Duration::from_secs(3600));
        assert_eq!(other.verify(&c, 101), Err(CookieError::BadSignature));
        let bumped = Auth::new(&Secret::new("correct horse"), 1, Duration::from_secs(3600));
        assert_eq!(bumped.verify(&c, 101), Err(CookieError::BadSignature));
    }

    #[test]
    fn tampered_cookies_are_refused() {
        let a = auth();
        let c = a.issue(100);
        // Extend the expiry by editing the payload.
        let parts: Vec<&str> = c.split('.').collect();
        let forged = format!("{}.{}.{}.{}.{}", parts[0], parts[1], "9999999999", parts[3], parts[4]);
        assert_eq!(a.verify(&forged, 101), Err(CookieError::BadSignature));
        // Flip one character of the signature.
        let mut bytes = c.clone().into_bytes();
        // (Not the last character: its low bits are padding, and a change there is merely malformed.)
        let i = bytes.len() - 5;
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(bytes).unwrap();
        assert_eq!(a.verify(&flipped, 101), Err(CookieError::BadSignature));
        assert_eq!(a.verify("garbage", 101), Err(CookieError::Malformed));
        assert_eq!(a.verify("", 101), Err(CookieError::Malformed));
    }

    #[test]
    fn a_shortened_ttl_applies_to_cookies_already_issued() {
        let long = Auth::new(&Secret::new("correct horse"), 0, Duration::from_secs(86400));
        let c = long.issue(0);
        let short = Auth::new(&Secret::new("correct horse"), 0, Duration::from_secs(60));
        assert_eq!(short.verify(&c, 61), Err(CookieError::Expired));
        assert!(short.verify(&c, 59).is_ok());
    }

    #[test]
    fn cookies_from_the_future_are_refused() {
        let a = auth();
        let c = a.issue(10_000);
        assert_eq!(a.verify(&c, 1_000), Err(CookieError::FromTheFuture));
    }

    #[test]
    fn set_cookie_has_the_safety_attributes() {
        let a = auth();
        let s = a.set_cookie("v", true);
        for attr in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/", "Max-Age=3600"] {
            assert!(s.contains(attr), "{s} lacks {attr}");
        }
        assert!(!a.set_cookie("v", false).contains("Secure"));
        assert!(clear_cookie(false).contains("Max-Age=0"));
    }

    #[test]
    fn cookie_and_bearer_headers_are_parsed() {
        let mut h = HeaderMap::new();
        h.insert(http::header::COOKIE, "a=1; quiver_session=abc.def; b=2".parse().unwrap());
        assert_eq!(session_cookie(&h), Some("abc.def"));
        h.insert(http::header::AUTHORIZATION, "Bearer  tok ".parse().unwrap());
        assert_eq!(bearer(&h), Bearer::Token("tok"));
        h.insert(http::header::AUTHORIZATION, "Basic dXNlcg==".parse().unwrap());
        assert_eq!(bearer(&h), Bearer::Malformed);
        assert_eq!(bearer(&HeaderMap::new()), Bearer::Absent);
    }

    #[test]
    fn forwarded_for_is_used_only_when_trusted() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "6.6.6.6, 10.0.0.7".parse().unwrap());
        let peer: SocketAddr = "192.168.1.1:5000".parse().unwrap();
        assert_eq!(client_ip(&h, Some(peer), false), peer.ip());
        assert_eq!(client_ip(&h, Some(peer), true), "10.0.0.7".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn limiter_blocks_after_the_burst_and_refills() {
        let l = LoginLimiter::new(3, Duration::from_secs(10));
        let ip: IpAddr = "1.2.3.4".parse().unwrap();
        let other: IpAddr = "1.2.3.5".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(l.check(ip, t0).is_ok());
            l.record_failure(ip, t0);
        }
        let wait = l.check(ip, t0).unwrap_err();
        assert_eq!(wait, Duration::from_secs(10));
        assert!(l.check(other, t0).is_ok(), "other clients are not affected");
        assert!(l.check(ip, t0 + Duration::from_secs(5)).is_err());
        assert!(l.check(ip, t0 + Duration::from_secs(10)).is_ok());
    }

    #[test]
    fn limiter_groups_ipv6_clients_by_prefix() {
        let l = LoginLimiter::new(1, Duration::from_secs(10));
        let t0 = Instant::now();
        l.record_failure("2001:db8::1".parse().unwrap(), t0);
        assert!(l.check("2001:db8::ffff".parse().unwrap(), t0).is_err());
        assert!(l.check("2001:db9::1".parse().unwrap(), t0).is_ok());
    }
}
