//! IP addresses and networks as Lua objects: `ipv4.addr`, `ipv4.network`,
//! `ipv6.addr`, `ipv6.network`. Addresses compare with `==`, `<`, `<=` and
//! print with `tostring`; networks answer `net:contains(addr)`.

use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

use ipnet::IpNet;
use mlua::{Lua, MetaMethod, MultiValue, UserData, UserDataFields, UserDataMethods, Value};

use super::error::located;

/// An address object (`pkt.src`, `flow.srcip`, `ipv4.addr("...")`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct AddrUd(pub IpAddr);

/// A network object (`ipv4.network("10.0.0.0/8")`); host bits are cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct NetworkUd(pub IpNet);

impl UserData for AddrUd {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        // Haka's `addr.packed`: the IPv4 address as a 32-bit number.
        fields.add_field_method_get("packed", |_, this| {
            Ok(match this.0 {
                IpAddr::V4(a) => Some(i64::from(u32::from(a))),
                IpAddr::V6(_) => None,
            })
        });
        fields.add_field_method_get("version", |_, this| Ok(if this.0.is_ipv4() { 4 } else { 6 }));
    }

    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_meta_method(MetaMethod::ToString, |_, this, ()| Ok(this.0.to_string()));
        // `==` between an address and anything that is not one is false.
        methods.add_meta_function(MetaMethod::Eq, |_, (a, b): (Value, Value)| {
            Ok(matches!((addr_of(&a), addr_of(&b)), (Some(x), Some(y)) if x == y))
        });
        methods.add_meta_function(MetaMethod::Lt, |lua, (a, b): (Value, Value)| {
            let (x, y) = both(lua, &a, &b)?;
            Ok(x < y)
        });
        methods.add_meta_function(MetaMethod::Le, |lua, (a, b): (Value, Value)| {
            let (x, y) = both(lua, &a, &b)?;
            Ok(x <= y)
        });
    }
}

impl UserData for NetworkUd {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        fields.add_field_method_get("net", |_, this| Ok(AddrUd(this.0.network())));
        fields.add_field_method_get("mask", |_, this| Ok(this.0.prefix_len()));
    }

    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method("contains", |lua, this, v: Value| match addr_from_value(&v) {
            Some(a) => Ok(this.0.contains(&a)),
            None => Err(located(lua, "network:contains expects an address")),
        });
        methods.add_meta_method(MetaMethod::ToString, |_, this, ()| Ok(this.0.to_string()));
        methods.add_meta_function(MetaMethod::Eq, |_, (a, b): (Value, Value)| {
            Ok(matches!((net_of(&a), net_of(&b)), (Some(x), Some(y)) if x == y))
        });
    }
}

fn addr_of(v: &Value) -> Option<IpAddr> {
    match v {
        Value::UserData(ud) => ud.borrow::<AddrUd>().ok().map(|a| a.0),
        _ => None,
    }
}

fn net_of(v: &Value) -> Option<IpNet> {
    match v {
        Value::UserData(ud) => ud.borrow::<NetworkUd>().ok().map(|n| n.0),
        _ => None,
    }
}

fn both(lua: &Lua, a: &Value, b: &Value) -> mlua::Result<(IpAddr, IpAddr)> {
    match (addr_of(a), addr_of(b)) {
        (Some(x), Some(y)) if x.is_ipv4() == y.is_ipv4() => Ok((x, y)),
        (Some(_), Some(_)) => Err(located(lua, "cannot order an IPv4 and an IPv6 address")),
        _ => Err(located(lua, "attempt to compare an address with a non-address")),
    }
}

/// An address from an address object or its text form.
pub(super) fn addr_from_value(v: &Value) -> Option<IpAddr> {
    match v {
        Value::String(s) => IpAddr::from_str(s.to_str().ok()?.trim()).ok(),
        _ => addr_of(v),
    }
}

/// A network from a network object or text (`"10.0.0.0/8"`; a bare address
/// is a host network).
pub(super) fn network_from_value(v: &Value) -> Option<IpNet> {
    match v {
        Value::String(s) => parse_network(s.to_str().ok()?.trim()),
        Value::UserData(ud) => ud.borrow::<NetworkUd>().ok().map(|n| n.0),
        _ => None,
    }
}

fn parse_network(s: &str) -> Option<IpNet> {
    if let Ok(n) = IpNet::from_str(s) {
        return Some(n.trunc());
    }
    IpAddr::from_str(s).ok().map(IpNet::from)
}

fn v4_from_args(lua: &Lua, args: &MultiValue) -> mlua::Result<Ipv4Addr> {
    let bad = || located(lua, "ipv4.addr expects \"a.b.c.d\", a 32-bit number, four octets or an address");
    let octet = |v: &Value| match v {
        Value::Integer(i) => u8::try_from(*i).ok(),
        Value::Number(n) if n.fract() == 0.0 && (0.0..=255.0).contains(n) => Some(*n as u8),
        _ => None,
    };
    match args.len() {
        1 => match &args[0] {
            Value::Integer(i) => u32::try_from(*i).map(Ipv4Addr::from).map_err(|_| bad()),
            Value::Number(n) if n.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(n) => {
                Ok(Ipv4Addr::from(*n as u32))
            }
            v => match addr_from_value(v) {
                Some(IpAddr::V4(a)) => Ok(a),
                _ => Err(bad()),
            },
        },
        4 => {
            let o: Option<Vec<u8>> = args.iter().map(octet).collect();
            match o.as_deref() {
                Some(&[a, b, c, d]) => Ok(Ipv4Addr::new(a, b, c, d)),
                _ => Err(bad()),
            }
        }
        _ => Err(bad()),
    }
}

/// `ipv4.addr(...)`.
pub(super) fn ipv4_addr(lua: &Lua, args: MultiValue) -> mlua::Result<AddrUd> {
    v4_from_args(lua, &args).map(|a| AddrUd(IpAddr::V4(a)))
}

/// `ipv6.addr("...")`.
pub(super) fn ipv6_addr(lua: &Lua, v: Value) -> mlua::Result<AddrUd> {
    match addr_from_value(&v) {
        Some(IpAddr::V6(a)) => Ok(AddrUd(IpAddr::V6(a))),
        _ => Err(located(lua, "ipv6.addr expects an IPv6 address such as \"2001:db8::1\"")),
    }
}

fn network_args(lua: &Lua, args: &MultiValue, want_v4: bool) -> mlua::Result<NetworkUd> {
    let family = if want_v4 { "ipv4" } else { "ipv6" };
    let bad = || located(lua, format!("{family}.network expects \"addr/len\" or (addr, len)"));
    let net = match args.len() {
        1 => network_from_value(&args[0]).ok_or_else(bad)?,
        2 => {
            let a = addr_from_value(&args[0]).ok_or_else(bad)?;
            let len = match &args[1] {
                Value::Integer(i) => u8::try_from(*i).map_err(|_| bad())?,
                _ => return Err(bad()),
            };
            IpNet::new(a, len).map_err(|_| bad())?.trunc()
        }
        _ => return Err(bad()),
    };
    if net.addr().is_ipv4() != want_v4 {
        return Err(bad());
    }
    Ok(NetworkUd(net))
}

/// `ipv4.network("a.b.c.d/n")` or `ipv4.network(addr, n)`.
pub(super) fn ipv4_network(lua: &Lua, args: MultiValue) -> mlua::Result<NetworkUd> {
    network_args(lua, &args, true)
}

/// `ipv6.network("x::/n")` or `ipv6.network(addr, n)`.
pub(super) fn ipv6_network(lua: &Lua, args: MultiValue) -> mlua::Result<NetworkUd> {
    network_args(lua, &args, false)
}
