//! Differential tests against Debian's wireguard-tools: keys made by `wg`
//! are read by kld-wg and the other way round, byte for byte.

use kld_exec::Cmd;
use kld_wg::key::{PresharedKey, PrivateKey, PublicKey};

fn wg(args: &[&str], stdin: Option<String>) -> String {
    let mut cmd = Cmd::new("wg").args(args);
    if let Some(s) = stdin {
        cmd = cmd.stdin_bytes(s);
    }
    cmd.run()
        .expect("wg from wireguard-tools")
        .stdout_str()
        .trim()
        .to_owned()
}

#[test]
fn wg_genkey_and_pubkey_agree_with_ours() {
    for _ in 0..20 {
        // wg's key, our public key.
        let theirs = wg(&["genkey"], None);
        let key = PrivateKey::from_base64(&theirs).unwrap();
        assert_eq!(key.to_base64(), theirs);
        assert_eq!(
            key.public_key().to_base64(),
            wg(&["pubkey"], Some(theirs + "\n"))
        );
        // Our key, wg's public key.
        let ours = PrivateKey::generate();
        let public = wg(&["pubkey"], Some(ours.to_base64() + "\n"));
        assert_eq!(PublicKey::from_base64(&public).unwrap(), ours.public_key());
        // Clamped as wg clamps: wg pubkey of the clamped form is the same.
        let b = ours.as_bytes();
        assert_eq!(b[0] & 7, 0);
        assert_eq!(b[31] & 0xc0, 0x40);
    }
}

#[test]
fn wg_genpsk_round_trips() {
    for _ in 0..10 {
        let theirs = wg(&["genpsk"], None);
        assert_eq!(
            PresharedKey::from_base64(&theirs).unwrap().to_base64(),
            theirs
        );
    }
}

#[test]
fn wg_refuses_what_we_refuse() {
    // A key with non-canonical trailing bits: wg pubkey refuses it, and so do we.
    let mut s = PublicKey::from_bytes([0; 32]).to_base64();
    s.replace_range(42..43, "B");
    assert!(PrivateKey::from_base64(&s).is_err());
    assert!(Cmd::new("wg")
        .arg("pubkey")
        .stdin_bytes(s + "\n")
        .run()
        .is_err());
}
