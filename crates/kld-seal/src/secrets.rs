//! Recognising secrets by their contents: private keys of every common
//! encoding, WireGuard keys, and the secret lines of configuration files.
//! Pure functions over bytes and text.

/// Whether `bytes` hold a private key in a text encoding: a PEM block
/// (PKCS#1, PKCS#8, SEC1, DSA, encrypted, OpenSSH's own format, OpenPGP
/// secret keys) whose `-----BEGIN ...PRIVATE KEY...-----` line is followed by
/// base64 and an `-----END` line, or a PuTTY key file. A program or a script
/// that merely names the markers (ssh-keygen, cloud-init) is not a key.
pub fn holds_private_key(bytes: &[u8]) -> bool {
    let mut lines = bytes
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let mut putty = false;
    while let Some(line) = lines.next() {
        if line.starts_with(b"PuTTY-User-Key-File-") {
            putty = true;
        } else if (putty && line.starts_with(b"Private-Lines: "))
            || (is_private_begin(line) && pem_body_follows(&mut lines))
        {
            return true;
        }
    }
    false
}

fn is_private_begin(line: &[u8]) -> bool {
    line.starts_with(b"-----BEGIN ")
        && (line.ends_with(b"PRIVATE KEY-----") || line == b"-----BEGIN PGP PRIVATE KEY BLOCK-----")
}

/// Header lines (`Proc-Type: ...`) and blank lines may come first; then at
/// least one line of base64 and, at last, an `-----END ` line.
fn pem_body_follows<'a>(lines: &mut impl Iterator<Item = &'a [u8]>) -> bool {
    let mut body = 0;
    for line in lines {
        if line.starts_with(b"-----END ") {
            return body > 0;
        }
        let base64 = line.len() >= 16
            && line
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
        if base64 {
            body += 1;
        } else if !(line.is_empty() || (body == 0 && line.contains(&b':'))) {
            return false;
        }
    }
    false
}

/// Whether `text` is exactly a WireGuard key (32 bytes in base64: 43
/// characters and `=`), as `wg genkey` writes one to a file.
pub fn is_wireguard_key(text: &str) -> bool {
    let t = text.trim();
    t.len() == 44
        && t.is_ascii()
        && t.ends_with('=')
        && t[..43]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

/// The keys of WireGuard configuration lines that are secrets.
const WG_SECRET_KEYS: &[&str] = &["privatekey", "presharedkey"];

fn wg_key(line: &str) -> Option<String> {
    let (key, _) = line.split_once('=')?;
    Some(key.trim().to_ascii_lowercase())
}

/// Whether a WireGuard (`wg`, `wg-quick`) configuration holds a private or
/// preshared key.
pub fn wg_config_has_secret(text: &str) -> bool {
    text.lines()
        .filter_map(wg_key)
        .any(|k| WG_SECRET_KEYS.contains(&k.as_str()))
}

/// The configuration without its `PrivateKey` and `PresharedKey` lines,
/// everything else kept byte for byte.
pub fn strip_wg_secrets(text: &str) -> String {
    text.split_inclusive('\n')
        .filter(|l| !wg_key(l).is_some_and(|k| WG_SECRET_KEYS.contains(&k.as_str())))
        .collect()
}

/// Whether an `KEY=value` environment file (the installer's manifest) sets
/// a variable whose name says it is a secret to a non-empty value.
pub fn env_file_secrets(text: &str) -> Vec<String> {
    const WORDS: &[&str] = &[
        "PASSWORD",
        "PASSWD",
        "SECRET",
        "TOKEN",
        "PRIVATE",
        "PASSPHRASE",
        "_KEY",
    ];
    text.lines()
        .filter_map(|l| {
            let l = l.trim().strip_prefix("export ").unwrap_or(l.trim());
            let (k, v) = l.split_once('=')?;
            let v = v.trim().trim_matches(|c| c == '"' || c == '\'');
            let upper = k.trim().to_ascii_uppercase();
            (!v.is_empty() && !k.starts_with('#') && WORDS.iter().any(|w| upper.contains(w)))
                .then(|| k.trim().to_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keys_are_recognised() {
        let body = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\nVJTUt9Us8cKjMZEa\n";
        for kind in [
            "RSA PRIVATE KEY",
            "PRIVATE KEY",
            "ENCRYPTED PRIVATE KEY",
            "OPENSSH PRIVATE KEY",
            "EC PRIVATE KEY",
        ] {
            let pem = format!("junk\r\n-----BEGIN {kind}-----\r\n{body}-----END {kind}-----\n");
            assert!(holds_private_key(pem.as_bytes()), "{kind}");
        }
        let encrypted = format!(
            "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,AB12\n\n{body}-----END RSA PRIVATE KEY-----\n"
        );
        assert!(holds_private_key(encrypted.as_bytes()));
        assert!(holds_private_key(
            b"PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nPrivate-Lines: 1\n"
        ));
        // Programs and scripts that name the markers are not keys.
        assert!(!holds_private_key(
            b"\0-----BEGIN OPENSSH PRIVATE KEY-----\n\0-----END OPENSSH PRIVATE KEY-----\n"
        ));
        assert!(!holds_private_key(
            b"MARK = '-----BEGIN RSA PRIVATE KEY-----'\nif key.startswith(MARK):\n"
        ));
        let cert = format!("-----BEGIN CERTIFICATE-----\n{body}-----END CERTIFICATE-----\n");
        assert!(!holds_private_key(cert.as_bytes()));
        assert!(!holds_private_key(b"ssh-ed25519 AAAAC3Nza me@host"));
        assert!(is_wireguard_key(
            "oK56DE9Ue9zK76rAc8pBl6opph+1v36lm7cXXsQKrQM=\n"
        ));
        assert!(!is_wireguard_key("not a key"));
    }

    #[test]
    fn wireguard_secrets_are_stripped() {
        let conf = "[Interface]\nAddress = 10.0.0.1/24\nPrivateKey = abc=\n\n[Peer]\nPublicKey = def=\n presharedkey=ghi=\nAllowedIPs = 10.0.0.2/32";
        assert!(wg_config_has_secret(conf));
        let s = strip_wg_secrets(conf);
        assert_eq!(
            s,
            "[Interface]\nAddress = 10.0.0.1/24\n\n[Peer]\nPublicKey = def=\nAllowedIPs = 10.0.0.2/32"
        );
        assert!(!wg_config_has_secret(&s));
    }

    #[test]
    fn env_secrets() {
        let env = "HOSTNAME=a\nROOT_PASSWORD='hunter2'\nexport WG_PRIVATE_KEY=x\nEMPTY_TOKEN=\n# OLD_SECRET=1";
        assert_eq!(env_file_secrets(env), ["ROOT_PASSWORD", "WG_PRIVATE_KEY"]);
    }

    proptest! {
        #[test]
        fn stripping_never_panics_and_is_idempotent(s in "\\PC*(\n\\PC*){0,5}") {
            let once = strip_wg_secrets(&s);
            prop_assert!(!wg_config_has_secret(&once));
            prop_assert_eq!(strip_wg_secrets(&once), once.clone());
            let _ = env_file_secrets(&s);
            let _ = holds_private_key(s.as_bytes());
            let _ = is_wireguard_key(&s);
        }

        #[test]
        fn other_lines_survive(lines in proptest::collection::vec("[A-Za-z ]{0,12}( = [a-z0-9]{0,8})?", 0..8)) {
            let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
            prop_assume!(!wg_config_has_secret(&text));
            let with = format!("PrivateKey = k=\n{text}");
            prop_assert_eq!(strip_wg_secrets(&with), text);
        }
    }
}
