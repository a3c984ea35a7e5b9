//! TCP authentication options: TCP-MD5 (RFC 2385, kind 19) and TCP-AO
//! (RFC 5925, kind 29).
//!
//! Linux checks them in `tcp_inbound_hash` (net/ipv4/tcp.c) before the
//! segment reaches the connection: a segment carrying TCP-MD5 when no key is
//! configured for the peer is dropped (`TCPMD5UNEXPECTED`). A connection
//! whose SYN carried no such option has no key on either end (a host with a
//! key for its peer signs its SYN, and drops an unsigned one), so under the
//! Linux receiver model sluice drops every later segment of it that carries
//! TCP-MD5, exactly as the endpoint does. TCP-AO depends on the kernel's
//! build: with `CONFIG_TCP_AO` Linux drops the segment like TCP-MD5, without
//! it the option is unknown and ignored. sluice cannot tell which, so a
//! TCP-AO segment is passed but treated as one that may not arrive: it never
//! wins a conflicting overlap, and no overlap is predicted against it.
//! A connection opened with a signature has keys sluice cannot know: it is
//! handled strictly (conflicting overlaps refused), so whichever segments
//! the endpoint's signature check drops, it reads bytes rules saw.

/// Option kind of TCP-MD5.
pub const KIND_MD5: u8 = 19;
/// Option kind of TCP-AO.
pub const KIND_AO: u8 = 29;

/// An authentication option a segment carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthOption {
    /// TCP-MD5.
    Md5,
    /// TCP-AO.
    Ao,
}

/// The first TCP-MD5 or TCP-AO option of the TCP header `header` (from its
/// first byte, options included). A malformed option list ends the walk, as
/// Linux's option parsers stop at it.
pub fn find(header: &[u8]) -> Option<AuthOption> {
    let options = header.get(crate::wire::header::TCP_MIN_HEADER_LEN..)?;
    let mut i = 0;
    while let Some(&kind) = options.get(i) {
        match kind {
            0 => return None,
            1 => i += 1,
            _ => {
                let len = usize::from(*options.get(i + 1)?);
                if len < 2 || i + len > options.len() {
                    return None;
                }
                match kind {
                    KIND_MD5 => return Some(AuthOption::Md5),
                    KIND_AO => return Some(AuthOption::Ao),
                    _ => i += len,
                }
            }
        }
    }
    None
}

/// True if the header carries TCP-MD5 or TCP-AO (see [`find`]).
pub fn carries_auth(header: &[u8]) -> bool {
    find(header).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(options: &[u8]) -> Vec<u8> {
        let mut h = vec![0u8; 20];
        h.extend_from_slice(options);
        h
    }

    #[test]
    fn finds_md5_and_ao_after_other_options() {
        let mut md5 = vec![1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, KIND_MD5, 18];
        md5.extend_from_slice(&[0xab; 16]);
        assert!(carries_auth(&header(&md5)));
        assert_eq!(find(&header(&md5)), Some(AuthOption::Md5));
        let ao = [1, 1, KIND_AO, 6, 1, 2, 0, 0];
        assert_eq!(find(&header(&ao)), Some(AuthOption::Ao));
    }

    #[test]
    fn ignores_other_options_end_of_list_and_malformed_lists() {
        assert!(!carries_auth(&header(&[2, 4, 5, 0xb4, 1, 1, 1, 0])));
        assert!(!carries_auth(&header(&[0, 0, KIND_MD5, 18])));
        // A length running past the header, or below 2, ends the walk.
        assert!(!carries_auth(&header(&[3, 40, KIND_MD5, 18])));
        assert!(!carries_auth(&header(&[3, 1, KIND_MD5, 2])));
        assert!(!carries_auth(&[0u8; 10]));
    }
}
