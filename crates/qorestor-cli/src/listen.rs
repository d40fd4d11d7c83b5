//! `--*-listen` values of `serve`: `ADDR:PORT` or `HOST:PORT`, resolved when the command line
//! is parsed and bound as std's `TcpListener::bind` binds (the first resolved address that
//! binds wins; when none does, the last error is reported).

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};

use anyhow::{anyhow, Result};

/// A listen address as the user gave it, with the socket addresses it resolves to (never none).
#[derive(Debug, Clone)]
pub struct ListenAddr {
    given: String,
    addrs: Vec<SocketAddr>,
}

impl ListenAddr {
    /// Runs `start` on each resolved address in turn until one succeeds, and returns what it
    /// returned; when every address fails, the error of the last one.
    pub fn bind_first<T>(&self, mut start: impl FnMut(SocketAddr) -> Result<T>) -> Result<T> {
        let mut last = None;
        for &addr in &self.addrs {
            match start(addr) {
                Ok(started) => return Ok(started),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow!("{} resolves to no address", self.given)))
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.given)
    }
}

/// Parses and resolves `ADDR:PORT` or `HOST:PORT` (clap value parser: a bad value is a usage
/// error naming it).
pub fn parse(s: &str) -> Result<ListenAddr, String> {
    let addrs: Vec<SocketAddr> = s
        .to_socket_addrs()
        .map_err(|e| format!("{s:?} is not ADDR:PORT or HOST:PORT with a known host ({e})"))?
        .collect();
    if addrs.is_empty() {
        return Err(format!("{s:?} resolves to no address"));
    }
    Ok(ListenAddr { given: s.to_string(), addrs })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_and_host_names_resolve_and_bad_values_name_themselves() {
        assert_eq!(parse("127.0.0.1:3260").unwrap().addrs, vec!["127.0.0.1:3260".parse().unwrap()]);
        let local = parse("localhost:0").unwrap();
        assert!(local.addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 0), "{local:?}");
        assert_eq!(local.to_string(), "localhost:0");
        assert!(parse("localhost").unwrap_err().contains("\"localhost\""));
        assert!(parse("127.0.0.1:99999").is_err());
    }

    #[test]
    fn bind_first_tries_each_address_and_reports_the_last_error() {
        let two =
            ListenAddr { given: "x:1".into(), addrs: vec!["[::1]:1".parse().unwrap(), "127.0.0.1:1".parse().unwrap()] };
        let mut tried = Vec::new();
        let got = two.bind_first(|a| {
            tried.push(a);
            if a.is_ipv6() {
                Err(anyhow!("no IPv6"))
            } else {
                Ok(a)
            }
        });
        assert_eq!(got.unwrap(), "127.0.0.1:1".parse::<SocketAddr>().unwrap());
        assert_eq!(tried.len(), 2);
        let err = two.bind_first(|a| Err::<(), _>(anyhow!("refused {a}"))).unwrap_err();
        assert_eq!(err.to_string(), "refused 127.0.0.1:1");
    }
}
