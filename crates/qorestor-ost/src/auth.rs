//! The SCRAM-SHA-256-shaped exchange of an OST session (the key schedule is in
//! [`qorestor_core::users`]).
//!
//! `Hello` (client-first: versions, capabilities, user, host, client nonce) → `Challenge`
//! (server-first: version, capabilities, server nonce, salt, Argon2id costs) → `Proof`
//! (ClientProof) → `Welcome` (ServerSignature) or `Failed`. The AuthMessage both sides sign is
//! [`AUTH_LABEL`], the `Hello` frame's bytes, the `Challenge` frame's bytes, and a 32-byte
//! channel binding (zeros on plain TCP; a TLS exporter later): everything negotiated is signed,
//! so a relay cannot change the versions, capabilities or costs unnoticed.

use qorestor_core::users::{self, KdfParams, KEY_LEN};

/// The label that starts every AuthMessage.
pub const AUTH_LABEL: &[u8] = b"qorestor OST SCRAM-SHA-256/Argon2id v1";

/// The AuthMessage over the two frames as sent and received.
pub fn auth_message(hello_frame: &[u8], challenge_frame: &[u8], binding: &[u8; 32]) -> Vec<u8> {
    let mut m = Vec::with_capacity(AUTH_LABEL.len() + hello_frame.len() + challenge_frame.len() + 32);
    m.extend_from_slice(AUTH_LABEL);
    m.extend_from_slice(hello_frame);
    m.extend_from_slice(challenge_frame);
    m.extend_from_slice(binding);
    m
}

/// The client's keys for one exchange: ClientProof to send and the ServerSignature to expect.
pub struct ClientSide {
    /// ClientProof.
    pub proof: [u8; KEY_LEN],
    /// The ServerSignature a server holding the user's keys sends.
    pub expected_signature: [u8; KEY_LEN],
}

/// Derives the client's side of the exchange. Costs outside the fixed bounds are refused
/// before anything is derived.
pub fn client_side(
    password: &[u8],
    salt: &[u8; 16],
    kdf: KdfParams,
    auth_message: &[u8],
) -> qorestor_core::Result<ClientSide> {
    kdf.check_bounds()?;
    let salted = users::salted_password(password, salt, kdf)?;
    let client_key = users::client_key(&salted);
    let server_key = users::server_key(&salted);
    Ok(ClientSide {
        proof: users::client_proof(&client_key, auth_message),
        expected_signature: users::hmac(server_key.as_ref(), &[auth_message]),
    })
}

/// The server's signature over `auth_message`.
pub fn server_signature(server_key: &[u8; KEY_LEN], auth_message: &[u8]) -> [u8; KEY_LEN] {
    users::hmac(server_key, &[auth_message])
}
