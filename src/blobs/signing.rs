//! HMAC-SHA256 signatures for `/files` links: the path, its expiry and its kind are
//! signed, so a link can be neither extended, redirected to another blob, nor turned
//! from a view into a download.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::LinkKind;

type HmacSha256 = Hmac<Sha256>;

#[derive(Clone)]
pub struct LinkSigner {
    secret: Vec<u8>,
}

/// Why a link was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkFault {
    BadSignature,
    Expired,
}

impl LinkSigner {
    pub fn new(secret: Vec<u8>) -> Self {
        LinkSigner { secret }
    }

    /// The query string (`exp=..&sig=..[&dl=1]`) for a blob key expiring at `expires` (Unix seconds).
    pub fn query(&self, key: &str, kind: LinkKind, expires: u64) -> String {
        let sig = hex::encode(self.mac(key, kind, expires).finalize().into_bytes());
        match kind {
            LinkKind::View => format!("exp={expires}&sig={sig}"),
            LinkKind::Download => format!("exp={expires}&dl=1&sig={sig}"),
        }
    }

    /// Checks a link's signature (in constant time) and then its expiry.
    pub fn verify(&self, key: &str, kind: LinkKind, expires: u64, sig_hex: &str, now: u64) -> Result<(), LinkFault> {
        let sig = hex::decode(sig_hex).map_err(|_| LinkFault::BadSignature)?;
        self.mac(key, kind, expires).verify_slice(&sig).map_err(|_| LinkFault::BadSignature)?;
        if now > expires {
            return Err(LinkFault::Expired);
        }
        Ok(())
    }

    fn mac(&self, key: &str, kind: LinkKind, expires: u64) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.secret).expect("HMAC takes any key length");
        let kind = match kind {
            LinkKind::View => "view",
            LinkKind::Download => "download",
        };
        mac.update(format!("{key}\n{expires}\n{kind}").as_bytes());
        mac
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(q: &str) -> (u64, String) {
        let mut exp = 0;
        let mut sig = String::new();
        for kv in q.split('&') {
            match kv.split_once('=') {
                Some(("exp", v)) => exp = v.parse().unwrap(),
                Some(("sig", v)) => sig = v.to_string(),
                _ => {}
            }
        }
        (exp, sig)
    }

    #[test]
    fn a_signed_link_verifies_until_it_expires() {
        let s = LinkSigner::new(b"secret".to_vec());
        let (exp, sig) = parts(&s.query("videos/a.mp4", LinkKind::View, 1000));
        assert_eq!(s.verify("videos/a.mp4", LinkKind::View, exp, &sig, 999), Ok(()));
        assert_eq!(s.verify("videos/a.mp4", LinkKind::View, exp, &sig, 1001), Err(LinkFault::Expired));
    }

    #[test]
    fn tampering_with_any_signed_part_is_refused() {
        let s = LinkSigner::new(b"secret".to_vec());
        let (exp, sig) = parts(&s.query("videos/a.mp4", LinkKind::View, 1000));
        let bad = Err(LinkFault::BadSignature);
        assert_eq!(s.verify("videos/b.mp4", LinkKind::View, exp, &sig, 0), bad);
        assert_eq!(s.verify("videos/a.mp4", LinkKind::View, exp + 1, &sig, 0), bad);
        assert_eq!(s.verify("videos/a.mp4", LinkKind::Download, exp, &sig, 0), bad);
        assert_eq!(s.verify("videos/a.mp4", LinkKind::View, exp, "zz", 0), bad);
        assert_eq!(LinkSigner::new(b"other".to_vec()).verify("videos/a.mp4", LinkKind::View, exp, &sig, 0), bad);
    }
}
