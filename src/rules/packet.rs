//! Packet objects: the `pkt` argument of the packet events, with Haka's
//! field names per layer. Fields are read from the event's packet copy when
//! indexed; a field a TCP, UDP or ICMP packet does not have is looked up in
//! its IP layer (`tcp.src`), and `pkt.ip` is the IP layer itself. Every
//! packet object has `timestamp`, the packet time of its event.

use std::net::IpAddr;

use mlua::{Lua, MetaMethod, UserData, UserDataMethods, Value};

use super::addr::AddrUd;
use super::context::{context, PacketCopy};
use super::data::{DataUd, Source};
use super::error::located;
use super::time::TimeUd;
use crate::inspect::Action;
use crate::wire::{checksum, proto, tcp_flags, IpInfo, Transport};

/// Which header a packet object shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Layer {
    /// IPv4 or IPv6.
    Ip,
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMP or ICMPv6.
    Icmp,
}

impl Layer {
    /// The packet object layer of an event's layer (the IP layer for
    /// events without a packet).
    pub(super) fn of(l: crate::inspect::PacketLayer) -> Layer {
        use crate::inspect::PacketLayer as P;
        match l {
            P::Tcp => Layer::Tcp,
            P::Udp => Layer::Udp,
            P::Icmp => Layer::Icmp,
            P::Ip | P::None => Layer::Ip,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Layer::Ip => "ip",
            Layer::Tcp => "tcp",
            Layer::Udp => "udp",
            Layer::Icmp => "icmp",
        }
    }

    /// The layer an event wants, or the IP layer if the packet lacks it.
    pub(super) fn for_packet(want: Layer, transport: &Transport) -> Layer {
        match (want, transport) {
            (Layer::Tcp, Transport::Tcp(_)) => Layer::Tcp,
            (Layer::Udp, Transport::Udp(_)) => Layer::Udp,
            (Layer::Icmp, Transport::Icmp(_)) => Layer::Icmp,
            _ => Layer::Ip,
        }
    }
}

/// A packet object, valid during the event it was made for.
#[derive(Debug, Clone, Copy)]
pub(super) struct PacketUd {
    /// The event it belongs to.
    pub epoch: u64,
    /// The layer it shows.
    pub layer: Layer,
}

/// `pkt.flags`: IP flags (`rb df mf`) or TCP flags (`fin syn rst psh ack urg ecn cwr`).
#[derive(Debug, Clone, Copy)]
pub(super) struct FlagsUd {
    ip: bool,
    bits: u8,
}

const IP_RB: u8 = 4;
const IP_DF: u8 = 2;
const IP_MF: u8 = 1;

impl UserData for FlagsUd {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_meta_method(MetaMethod::Index, |lua, this, key: mlua::String| {
            let key = key.as_bytes();
            let mask = if this.ip {
                match &key[..] {
                    b"rb" => IP_RB,
                    b"df" => IP_DF,
                    b"mf" => IP_MF,
                    b"all" => return Ok(Value::Integer(i64::from(this.bits))),
                    _ => 0,
                }
            } else {
                match &key[..] {
                    b"fin" => tcp_flags::FIN,
                    b"syn" => tcp_flags::SYN,
                    b"rst" => tcp_flags::RST,
                    b"psh" => tcp_flags::PSH,
                    b"ack" => tcp_flags::ACK,
                    b"urg" => tcp_flags::URG,
                    b"ecn" | b"ece" => tcp_flags::ECE,
                    b"cwr" => tcp_flags::CWR,
                    b"all" => return Ok(Value::Integer(i64::from(this.bits))),
                    _ => 0,
                }
            };
            if mask == 0 {
                return Err(located(lua, format!("unknown flag '{}'", String::from_utf8_lossy(&key))));
            }
            Ok(Value::Boolean(this.bits & mask != 0))
        });
        methods.add_meta_method(MetaMethod::NewIndex, |lua, _, _: mlua::MultiValue| -> mlua::Result<()> {
            Err(located(lua, "packet fields are read-only"))
        });
    }
}

impl UserData for PacketUd {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method("drop", |lua, this, ()| {
            let ctx = context(lua)?;
            ctx.check_live(lua, this.epoch, "packet")?;
            ctx.decide(Action::DropPacket);
            Ok(())
        });
        methods.add_method("verify_checksum", |lua, this, ()| {
            let ctx = context(lua)?;
            ctx.check_live(lua, this.epoch, "packet")?;
            let p = ctx.packet.try_borrow().map_err(|_| located(lua, "packet buffer busy"))?;
            Ok(verify_checksum(&p, this.layer))
        });
        methods.add_meta_method(MetaMethod::Index, |lua, this, key: mlua::String| {
            let ctx = context(lua)?;
            ctx.check_live(lua, this.epoch, "packet")?;
            let p = ctx.packet.try_borrow().map_err(|_| located(lua, "packet buffer busy"))?;
            let key = key.as_bytes();
            if &key[..] == b"timestamp" {
                return Ok(Value::UserData(lua.create_userdata(TimeUd(ctx.time.get()))?));
            }
            if let Some(v) = field(lua, this, &p, &key)? {
                return Ok(v);
            }
            Err(located(
                lua,
                format!(
                    "unknown field '{}' of a {} packet",
                    String::from_utf8_lossy(&key),
                    this.layer.name()
                ),
            ))
        });
        methods.add_meta_method(MetaMethod::NewIndex, |lua, _, _: mlua::MultiValue| -> mlua::Result<()> {
            Err(located(lua, "packet fields are read-only"))
        });
        methods.add_meta_method(MetaMethod::ToString, |lua, this, ()| {
            let ctx = context(lua)?;
            ctx.check_live(lua, this.epoch, "packet")?;
            let p = ctx.packet.try_borrow().map_err(|_| located(lua, "packet buffer busy"))?;
            Ok(describe(&p, this.layer))
        });
    }
}

fn int(v: impl Into<i64>) -> Option<Value> {
    Some(Value::Integer(v.into()))
}

fn be16(b: &[u8], off: usize) -> i64 {
    b.get(off..off + 2).map(|s| i64::from(u16::from_be_bytes([s[0], s[1]]))).unwrap_or(0)
}

/// Looks `key` up in the packet's layer, then in its IP layer.
fn field(lua: &Lua, this: &PacketUd, p: &PacketCopy, key: &[u8]) -> mlua::Result<Option<Value>> {
    let Some(ip) = &p.ip else { return Ok(None) };
    let payload = |start: usize, len: usize| -> mlua::Result<Option<Value>> {
        let len = len.min(p.bytes.len().saturating_sub(start));
        let d = DataUd { epoch: this.epoch, source: Source::Packet, start, len };
        Ok(Some(Value::UserData(lua.create_userdata(d)?)))
    };
    let flags = |ip: bool, bits: u8| -> mlua::Result<Option<Value>> {
        Ok(Some(Value::UserData(lua.create_userdata(FlagsUd { ip, bits })?)))
    };
    let layer_value = match (this.layer, &p.transport) {
        (Layer::Tcp, Transport::Tcp(t)) => match key {
            b"srcport" => int(t.src_port),
            b"dstport" => int(t.dst_port),
            b"seq" => int(t.seq.0),
            b"ack_seq" => int(t.ack.0),
            b"hdr_len" => int(t.header_len as i64),
            b"window_size" => int(t.window),
            b"checksum" => int(t.checksum),
            b"urgent_pointer" => int(t.urgent),
            b"flags" => return flags(false, t.flags),
            b"payload" => return payload(t.payload_offset, t.payload_len),
            // The four bits between the data offset and the flags (Haka's `res`).
            b"res" => int(p.bytes.get(ip.header_len + 12).map_or(0, |b| b & 0x0f)),
            b"name" => return name(lua, "tcp"),
            _ => None,
        },
        (Layer::Udp, Transport::Udp(u)) => match key {
            b"srcport" => int(u.src_port),
            b"dstport" => int(u.dst_port),
            b"length" => int(u.length),
            b"checksum" => int(u.checksum),
            b"payload" => return payload(u.payload_offset, u.payload_len),
            b"name" => return name(lua, "udp"),
            _ => None,
        },
        (Layer::Icmp, Transport::Icmp(i)) => match key {
            b"type" => int(i.typ),
            b"code" => int(i.code),
            b"checksum" => int(i.checksum),
            b"payload" => return payload(i.payload_offset, p.bytes.len()),
            b"name" => return name(lua, "icmp"),
            _ => None,
        },
        _ => None,
    };
    if layer_value.is_some() {
        return Ok(layer_value);
    }
    if this.layer != Layer::Ip && key == b"ip" {
        let ip_view = PacketUd { epoch: this.epoch, layer: Layer::Ip };
        return Ok(Some(Value::UserData(lua.create_userdata(ip_view)?)));
    }
    if key == b"opt" {
        return ip_options(lua, this.epoch, ip, p).map(|t| Some(Value::Table(t)));
    }
    ip_field(lua, ip, p, key, payload, flags)
}

fn name(lua: &Lua, n: &str) -> mlua::Result<Option<Value>> {
    Ok(Some(Value::String(lua.create_string(n)?)))
}

/// Haka's `ip.opt`: the IPv4 header options in order, each a table with
/// `type` (the whole first byte), `copy`, `class` and `number` (its bits)
/// and, for options other than end-of-list (0) and no-operation (1), `len`
/// and `data` (a data object). End-of-list is the last entry. An IPv6
/// packet has none (its extension headers are not options).
fn ip_options(lua: &Lua, epoch: u64, ip: &IpInfo, p: &PacketCopy) -> mlua::Result<mlua::Table> {
    let list = lua.create_table()?;
    if ip.version != 4 {
        return Ok(list);
    }
    let end = ip.base_header_len.min(p.bytes.len());
    let mut off = 20;
    let mut n = 0;
    while off < end {
        let typ = p.bytes[off];
        let o = lua.create_table()?;
        o.raw_set("type", typ)?;
        o.raw_set("copy", typ >> 7)?;
        o.raw_set("class", (typ >> 5) & 3)?;
        o.raw_set("number", typ & 31)?;
        n += 1;
        list.raw_set(n, o.clone())?;
        if typ == 0 {
            break;
        }
        if typ == 1 {
            off += 1;
            continue;
        }
        // A length that does not fit is cut to the header (the decoder
        // already judged the packet; rules see what is there).
        let len = usize::from(p.bytes.get(off + 1).copied().unwrap_or(2)).max(2).min(end - off);
        o.raw_set("len", len)?;
        let data =
            DataUd { epoch, source: Source::Packet, start: (off + 2).min(end), len: len.saturating_sub(2) };
        o.raw_set("data", lua.create_userdata(data)?)?;
        off += len;
    }
    Ok(list)
}

fn ip_field(
    lua: &Lua,
    ip: &IpInfo,
    p: &PacketCopy,
    key: &[u8],
    payload: impl Fn(usize, usize) -> mlua::Result<Option<Value>>,
    flags: impl Fn(bool, u8) -> mlua::Result<Option<Value>>,
) -> mlua::Result<Option<Value>> {
    let addr = |a: IpAddr| -> mlua::Result<Option<Value>> {
        Ok(Some(Value::UserData(lua.create_userdata(AddrUd(a))?)))
    };
    let b = &p.bytes;
    let v6 = ip.version == 6;
    Ok(match key {
        b"name" => return name(lua, if v6 { "ipv6" } else { "ipv4" }),
        b"src" => return addr(ip.src),
        b"dst" => return addr(ip.dst),
        b"version" => int(ip.version),
        b"hdr_len" => int(ip.base_header_len as i64),
        b"tos" | b"traffic_class" => int(ip.tos),
        b"len" => int(b.len() as i64),
        b"id" => int(ip.id),
        b"flags" => {
            let bits =
                u8::from(ip.flag_rb) * IP_RB + u8::from(ip.flag_df) * IP_DF + u8::from(ip.flag_mf) * IP_MF;
            return flags(true, bits);
        }
        b"frag_offset" => int(ip.frag_offset),
        b"ttl" | b"hop_limit" => int(ip.ttl),
        b"proto" => int(ip.proto),
        b"checksum" => int(ip.checksum),
        b"payload" => return payload(ip.header_len, b.len().saturating_sub(ip.header_len)),
        // IPv6 names for the fixed header's own fields.
        b"flow_label" if v6 => int(b
            .get(1..4)
            .map(|s| (u32::from(s[0] & 0x0f) << 16) | (u32::from(s[1]) << 8) | u32::from(s[2]))
            .unwrap_or(0)),
        b"payload_len" if v6 => Some(Value::Integer(be16(b, 4))),
        b"next_header" if v6 => int(b.get(6).copied().unwrap_or(0)),
        _ => None,
    })
}

/// The checksum of the layer, as the receiver would verify it.
fn verify_checksum(p: &PacketCopy, layer: Layer) -> bool {
    let Some(ip) = &p.ip else { return false };
    let l4 = p.bytes.get(ip.header_len..).unwrap_or(&[]);
    match (layer, &p.transport) {
        (Layer::Tcp, Transport::Tcp(_)) => checksum::transport_ok(ip.src, ip.dst, proto::TCP, l4),
        // A zero UDP checksum over IPv4 means "not computed".
        (Layer::Udp, Transport::Udp(u)) if u.checksum == 0 && ip.version == 4 => true,
        (Layer::Udp, Transport::Udp(_)) => checksum::transport_ok(ip.src, ip.dst, proto::UDP, l4),
        (Layer::Icmp, Transport::Icmp(i)) if i.v6 => {
            checksum::transport_ok(ip.src, ip.dst, proto::ICMPV6, l4)
        }
        (Layer::Icmp, Transport::Icmp(_)) => checksum::finish(checksum::sum(0, l4)) == 0,
        _ if ip.version == 4 => {
            let hdr = p.bytes.get(..ip.base_header_len).unwrap_or(&[]);
            !hdr.is_empty() && checksum::finish(checksum::sum(0, hdr)) == 0
        }
        _ => true,
    }
}

fn describe(p: &PacketCopy, layer: Layer) -> String {
    let Some(ip) = &p.ip else { return "packet".to_owned() };
    match (layer, &p.transport) {
        (Layer::Tcp, Transport::Tcp(t)) => {
            format!("tcp {}:{} > {}:{}", ip.src, t.src_port, ip.dst, t.dst_port)
        }
        (Layer::Udp, Transport::Udp(u)) => {
            format!("udp {}:{} > {}:{}", ip.src, u.src_port, ip.dst, u.dst_port)
        }
        (Layer::Icmp, Transport::Icmp(i)) => {
            format!("icmp {} > {} type {} code {}", ip.src, ip.dst, i.typ, i.code)
        }
        _ => format!("ipv{} {} > {} proto {}", ip.version, ip.src, ip.dst, ip.proto),
    }
}
