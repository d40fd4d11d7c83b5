//! TLS for replication over TCP (`replication add --encryption aes128|aes256`).
//!
//! TLS 1.3 only (rustls with the ring provider). The source offers only the AES-GCM suite its
//! setting names (`aes128`: TLS_AES_128_GCM_SHA256, `aes256`: TLS_AES_256_GCM_SHA384); the
//! listener accepts either, and plain TCP too (a connection whose first byte is a TLS record
//! header, 0x16, is TLS; a plain frame starts with 0x00).
//!
//! The listener's certificate is self-signed, made on its first TLS session and kept in its
//! catalog (`replication/tls`). The source does not check it against any authority: both sides
//! authenticate with the replication password, and their proofs cover 32 bytes exported from
//! the TLS session (RFC 8446 §7.5), so a man in the middle, who holds a different session with
//! each side, cannot produce a proof for either without the password.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{ring, CryptoProvider};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{ClientConnection, DigitallySignedStruct, ServerConnection, SignatureScheme, StreamOwned};
use serde::{Deserialize, Serialize};

use crate::crypto::{hex, unhex};
use crate::engine::Engine;
use crate::error::{Error, Result};

/// Engine state key of the listener's certificate and key.
const TLS_KEY: &str = "replication/tls";
/// Exporter label of the channel binding.
const BINDING_LABEL: &[u8] = b"EXPORTER-qorestor-replication";
/// First byte of a TLS handshake record.
pub(crate) const TLS_HANDSHAKE_BYTE: u8 = 0x16;

/// Encryption on the wire of a replication to `HOST:PORT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WireEncryption {
    /// Plain TCP.
    #[default]
    None,
    /// TLS 1.3 with AES-128-GCM.
    Aes128,
    /// TLS 1.3 with AES-256-GCM.
    Aes256,
}

impl std::str::FromStr for WireEncryption {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "none" => Ok(WireEncryption::None),
            "aes128" => Ok(WireEncryption::Aes128),
            "aes256" => Ok(WireEncryption::Aes256),
            _ => Err(Error::invalid("wire encryption", s, "expected none, aes128 or aes256")),
        }
    }
}

/// A connection, plain or TLS: what the session reads and writes frames on.
pub(crate) trait Transport: Read + Write + Send {
    /// 32 bytes both ends of this TLS session share and nobody else has (zeros on plain TCP).
    fn channel_binding(&self) -> Result<[u8; 32]>;
}

impl Transport for TcpStream {
    fn channel_binding(&self) -> Result<[u8; 32]> {
        Ok([0; 32])
    }
}

/// A socket that counts the bytes crossing it both ways (TLS records and handshake included).
pub(crate) type Counted = crate::counted::Counted<TcpStream>;

impl Transport for Counted {
    fn channel_binding(&self) -> Result<[u8; 32]> {
        Ok([0; 32])
    }
}

impl Transport for StreamOwned<ClientConnection, Counted> {
    fn channel_binding(&self) -> Result<[u8; 32]> {
        self.conn.export_keying_material([0u8; 32], BINDING_LABEL, None).map_err(tls_error)
    }
}

impl Transport for StreamOwned<ServerConnection, TcpStream> {
    fn channel_binding(&self) -> Result<[u8; 32]> {
        self.conn.export_keying_material([0u8; 32], BINDING_LABEL, None).map_err(tls_error)
    }
}

fn tls_error(e: rustls::Error) -> Error {
    Error::internal(format!("replication TLS: {e}"))
}

/// The ring provider with only the given suites.
fn provider(suites: Vec<rustls::SupportedCipherSuite>) -> Arc<CryptoProvider> {
    Arc::new(CryptoProvider { cipher_suites: suites, ..ring::default_provider() })
}

/// Wraps a connected socket in TLS as the source, offering the suite `enc` names.
pub(crate) fn client(tcp: Counted, enc: WireEncryption) -> Result<StreamOwned<ClientConnection, Counted>> {
    let suite = match enc {
        WireEncryption::Aes128 => ring::cipher_suite::TLS13_AES_128_GCM_SHA256,
        WireEncryption::Aes256 => ring::cipher_suite::TLS13_AES_256_GCM_SHA384,
        WireEncryption::None => return Err(Error::internal("replication TLS: no suite for `none`")),
    };
    let provider = provider(vec![suite]);
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_error)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PasswordAuthenticated(provider)))
        .with_no_client_auth();
    let name = ServerName::try_from("qorestor-replication").expect("a valid DNS name");
    let conn = ClientConnection::new(Arc::new(config), name).map_err(tls_error)?;
    Ok(StreamOwned::new(conn, tcp))
}

/// Wraps an accepted socket in TLS as the listener, with its certificate.
pub(crate) fn server(engine: &Engine, tcp: TcpStream) -> Result<StreamOwned<ServerConnection, TcpStream>> {
    let (cert, key) = engine.listener_certificate()?;
    let suites = vec![ring::cipher_suite::TLS13_AES_256_GCM_SHA384, ring::cipher_suite::TLS13_AES_128_GCM_SHA256];
    let config = rustls::ServerConfig::builder_with_provider(provider(suites))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_error)?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .map_err(tls_error)?;
    let conn = ServerConnection::new(Arc::new(config)).map_err(tls_error)?;
    Ok(StreamOwned::new(conn, tcp))
}

/// The listener's certificate and key, kept in its catalog.
#[derive(Serialize, Deserialize)]
struct ListenerCertificate {
    /// DER, hex.
    cert: String,
    /// PKCS#8 DER, hex.
    key: String,
}

impl Engine {
    /// The listener's TLS certificate and key, made (self-signed) and stored on first use.
    fn listener_certificate(&self) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>)> {
        let _guard = self.inner.group_update.lock();
        let stored = match self.catalog().meta::<ListenerCertificate>(TLS_KEY)? {
            Some(c) => c,
            None => {
                let made = rcgen::generate_simple_self_signed(vec!["qorestor-replication".to_string()])
                    .map_err(|e| Error::internal(format!("cannot make the replication TLS certificate: {e}")))?;
                let c = ListenerCertificate { cert: hex(made.cert.der()), key: hex(&made.key_pair.serialize_der()) };
                self.catalog().put_meta(TLS_KEY, &c)?;
                c
            }
        };
        let damaged = || Error::damaged("replication TLS certificate record", "bad hex");
        let cert = CertificateDer::from(unhex(&stored.cert).ok_or_else(damaged)?);
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(unhex(&stored.key).ok_or_else(damaged)?));
        Ok((cert, key))
    }
}

/// Accepts any certificate: the password proofs, bound to the session, authenticate the
/// listener (see the module documentation). Handshake signatures are still verified, so the
/// peer holds the key of the certificate it showed.
#[derive(Debug)]
struct PasswordAuthenticated(Arc<CryptoProvider>);

impl ServerCertVerifier for PasswordAuthenticated {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asking_for_tls_without_a_suite_is_an_internal_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let tcp = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let counted = Counted { inner: tcp, bytes: Arc::new(std::sync::atomic::AtomicU64::new(0)) };
        let e = client(counted, WireEncryption::None).err().unwrap();
        assert_eq!(e.kind(), crate::ErrorKind::Internal, "{e}");
        assert!(e.to_string().starts_with("internal error: replication TLS"), "{e}");
    }
}
