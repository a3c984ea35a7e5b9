//! Haka's policy criterion objects: `haka.policy.value(v)`, `set{...}`,
//! `range(min, max)`, `outofrange(min, max)`, `present()`, `absent()`,
//! `ipv4_in_network(net)` (and sluice's `ipv6_in_network`), and
//! `haka.policy.learn(kind)`. A criterion compares one value of a policy
//! point (`srcport`, or whatever a rule's `apply` passes) and says whether
//! the policy stays eligible; a value that is not a criterion object is
//! compared with `==`.
//!
//! At the built-in `new_connection` points the values are the flow's
//! addresses and ports; they are compared without making Lua objects
//! ([`Subject::Addr`], [`Subject::Int`]), with the same results Lua's `==`,
//! `<` and `<=` give.

use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use mlua::{Function, Lua, MetaMethod, MultiValue, UserData, UserDataMethods, Value};
use parking_lot::Mutex;

use super::super::addr::{network_from_value, AddrUd};
use super::super::error::located;

/// Which kind of criterion: `haka.policy.set` and the others are callable
/// objects of this type, so `haka.policy.learn(haka.policy.set)` can name one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// `value(v)`: equal to `v`.
    Value,
    /// `set{a, b, ...}`: equal to one of them.
    Set,
    /// `range(min, max)`: `min <= x <= max`.
    Range,
    /// `outofrange(min, max)`: `x < min or x > max`.
    OutOfRange,
    /// `present()`: the value is there.
    Present,
    /// `absent()`: the value is nil.
    Absent,
    /// `ipv4_in_network(net)`: an address inside the IPv4 network `net`.
    InNetwork,
    /// `ipv6_in_network(net)`: the same for IPv6 (sluice's; Haka has no IPv6).
    InNetwork6,
}

impl Kind {
    /// The name under `haka.policy`.
    pub(super) fn name(self) -> &'static str {
        match self {
            Kind::Value => "value",
            Kind::Set => "set",
            Kind::Range => "range",
            Kind::OutOfRange => "outofrange",
            Kind::Present => "present",
            Kind::Absent => "absent",
            Kind::InNetwork => "ipv4_in_network",
            Kind::InNetwork6 => "ipv6_in_network",
        }
    }

    fn learns(self) -> bool {
        matches!(self, Kind::Set | Kind::Range)
    }
}

/// `haka.policy.<kind>`: call it to make a criterion.
#[derive(Debug, Clone, Copy)]
pub(super) struct KindUd(pub Kind);

impl UserData for KindUd {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_meta_method(MetaMethod::Call, |lua, this, args: MultiValue| {
            let args: Vec<Value> = args.into_iter().collect();
            Ok(CriterionUd(Arc::new(Criterion::build(lua, this.0, &args)?)))
        });
        methods.add_meta_method(MetaMethod::ToString, |_, this, ()| {
            Ok(format!("haka.policy.{}", this.0.name()))
        });
    }
}

/// What a criterion holds.
#[derive(Debug)]
enum State {
    Value(Value),
    Set(Vec<Value>),
    /// `None` until a learning range has seen a value.
    Bounds(Option<(Value, Value)>),
    Nothing,
    Net(IpNet),
}

/// A criterion. Policies hold it directly (no Lua lookup per comparison);
/// one object may serve several policies, and a learning one is shared
/// with every policy it appears in.
#[derive(Debug)]
pub(super) struct Criterion {
    kind: Kind,
    /// Made by `haka.policy.learn`: while `haka.policy.learning` is true it
    /// does not decide eligibility but records the values it sees.
    pub learning: bool,
    state: Mutex<State>,
}

/// The Lua object of a criterion.
#[derive(Debug, Clone)]
pub(super) struct CriterionUd(pub Arc<Criterion>);

impl UserData for CriterionUd {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_meta_method(MetaMethod::ToString, |_, this, ()| {
            Ok(format!("haka.policy.{} criterion", this.0.kind.name()))
        });
    }
}

/// The value a criterion looks at.
#[derive(Debug, Clone)]
pub(super) enum Subject {
    /// An address (a built-in point's `srcip`/`dstip`).
    Addr(IpAddr),
    /// A number (a built-in point's ports).
    Int(i64),
    /// Any Lua value (`values[name]` of a rule's `apply`).
    Lua(Value),
}

impl Subject {
    fn is_nil(&self) -> bool {
        matches!(self, Subject::Lua(Value::Nil))
    }

    /// The subject as a Lua value.
    pub(super) fn to_value(&self, lua: &Lua) -> mlua::Result<Value> {
        Ok(match self {
            Subject::Addr(a) => Value::UserData(lua.create_userdata(AddrUd(*a))?),
            Subject::Int(i) => Value::Integer(*i),
            Subject::Lua(v) => v.clone(),
        })
    }
}

fn addr_of(v: &Value) -> Option<IpAddr> {
    match v {
        Value::UserData(ud) => ud.borrow::<AddrUd>().ok().map(|a| a.0),
        _ => None,
    }
}

fn number_of(v: &Value) -> Option<f64> {
    match v {
        Value::Integer(i) => Some(*i as f64),
        Value::Number(n) => Some(*n),
        _ => None,
    }
}

/// Lua's `a == b` with `b` the subject.
fn equal(v: &Value, s: &Subject) -> mlua::Result<bool> {
    Ok(match s {
        Subject::Int(i) => match v {
            Value::Integer(x) => x == i,
            Value::Number(x) => *x == *i as f64,
            _ => false,
        },
        Subject::Addr(a) => addr_of(v) == Some(*a),
        Subject::Lua(x) => v.equals(x)?,
    })
}

/// Lua's `a < b` (`strict`) or `a <= b`, natively for numbers and addresses
/// of one family, else through Lua (which raises Lua's own errors).
fn less(lua: &Lua, a: &Subject, b: &Subject, strict: bool) -> mlua::Result<bool> {
    let native = |x: &Subject| match x {
        Subject::Int(i) => Some(Ok(*i as f64)),
        Subject::Lua(v) => number_of(v).map(Ok).or_else(|| addr_of(v).map(Err)),
        Subject::Addr(a) => Some(Err(*a)),
    };
    match (native(a), native(b)) {
        (Some(Ok(x)), Some(Ok(y))) => return Ok(if strict { x < y } else { x <= y }),
        (Some(Err(x)), Some(Err(y))) if x.is_ipv4() == y.is_ipv4() => {
            return Ok(if strict { x < y } else { x <= y })
        }
        _ => {}
    }
    let f: Function = lua.named_registry_value(if strict { LT } else { LE })?;
    f.call((a.to_value(lua)?, b.to_value(lua)?))
}

const LT: &str = "sluice.policy.lt";
const LE: &str = "sluice.policy.le";

/// Installs the Lua comparison helpers `less` falls back to.
pub(super) fn install(lua: &Lua) -> mlua::Result<()> {
    let lt: Function =
        lua.load("local a, b = ... return a < b").set_name("=[sluice]policy").into_function()?;
    let le: Function =
        lua.load("local a, b = ... return a <= b").set_name("=[sluice]policy").into_function()?;
    lua.set_named_registry_value(LT, lt)?;
    lua.set_named_registry_value(LE, le)
}

impl Criterion {
    /// A `value` criterion (what a plain value in a policy becomes).
    pub(super) fn value(v: Value) -> Criterion {
        Criterion { kind: Kind::Value, learning: false, state: Mutex::new(State::Value(v)) }
    }

    /// An `in_network` criterion.
    pub(super) fn in_network(net: IpNet) -> Criterion {
        Criterion { kind: Kind::InNetwork, learning: false, state: Mutex::new(State::Net(net)) }
    }

    /// `haka.policy.<kind>(args...)`.
    fn build(lua: &Lua, kind: Kind, args: &[Value]) -> mlua::Result<Criterion> {
        let arg = |i: usize| args.get(i).cloned().unwrap_or(Value::Nil);
        let state = match kind {
            Kind::Value => State::Value(arg(0)),
            Kind::Set => match arg(0) {
                Value::Table(t) => State::Set(
                    t.pairs::<Value, Value>().map(|p| p.map(|(_, v)| v)).collect::<Result<_, _>>()?,
                ),
                _ => {
                    return Err(located(
                        lua,
                        "haka.policy.set expects a table of values, e.g. haka.policy.set{ 80, 443 }",
                    ))
                }
            },
            Kind::Range | Kind::OutOfRange => {
                let (lo, hi) = (arg(0), arg(1));
                if lo.is_nil() || hi.is_nil() {
                    return Err(located(
                        lua,
                        format!("haka.policy.{}(min, max): invalid min or max", kind.name()),
                    ));
                }
                if !less(lua, &Subject::Lua(lo.clone()), &Subject::Lua(hi.clone()), false)? {
                    return Err(located(
                        lua,
                        format!("haka.policy.{}(min, max): invalid bounds (min > max)", kind.name()),
                    ));
                }
                State::Bounds(Some((lo, hi)))
            }
            Kind::Present | Kind::Absent => State::Nothing,
            Kind::InNetwork | Kind::InNetwork6 => {
                let v6 = kind == Kind::InNetwork6;
                match network_from_value(&arg(0)) {
                    Some(n) if n.addr().is_ipv6() == v6 => State::Net(n),
                    _ => {
                        let example = if v6 {
                            "ipv6.network(\"2001:db8::/32\")"
                        } else {
                            "ipv4.network(\"10.0.0.0/8\")"
                        };
                        let msg = format!("haka.policy.{} expects a network, e.g. {example}", kind.name());
                        return Err(located(lua, msg));
                    }
                }
            }
        };
        Ok(Criterion { kind, learning: false, state: Mutex::new(state) })
    }

    /// `haka.policy.learn(kind)`: an empty criterion of that kind that learns.
    pub(super) fn learner(lua: &Lua, kind: Kind) -> mlua::Result<CriterionUd> {
        if !kind.learns() {
            return Err(located(
                lua,
                format!(
                    "haka.policy.learn: cannot learn on haka.policy.{} (only set and range learn)",
                    kind.name()
                ),
            ));
        }
        let state = if kind == Kind::Set { State::Set(Vec::new()) } else { State::Bounds(None) };
        Ok(CriterionUd(Arc::new(Criterion { kind, learning: true, state: Mutex::new(state) })))
    }

    /// True if `s` satisfies the criterion.
    pub(super) fn matches(&self, lua: &Lua, s: &Subject) -> mlua::Result<bool> {
        // Comparisons may run Lua (`__lt`), which could reach this criterion again.
        let state = self.state.try_lock().ok_or_else(|| located(lua, "policy criterion busy"))?;
        if matches!(self.kind, Kind::Absent | Kind::Present) {
            return Ok(s.is_nil() == (self.kind == Kind::Absent));
        }
        if s.is_nil() {
            return Ok(false);
        }
        match &*state {
            State::Value(v) => equal(v, s),
            State::Set(items) => {
                for v in items {
                    if equal(v, s)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            State::Bounds(None) => Ok(false),
            State::Bounds(Some((lo, hi))) => {
                let (lo, hi) = (Subject::Lua(lo.clone()), Subject::Lua(hi.clone()));
                if self.kind == Kind::OutOfRange {
                    Ok(less(lua, s, &lo, true)? || less(lua, &hi, s, true)?)
                } else {
                    Ok(less(lua, &lo, s, false)? && less(lua, s, &hi, false)?)
                }
            }
            State::Nothing => Ok(false),
            State::Net(n) => match s {
                Subject::Addr(a) => Ok(n.contains(a)),
                Subject::Lua(v) => match addr_of(v) {
                    Some(a) => Ok(n.contains(&a)),
                    None => Err(located(lua, "haka.policy.ipv4_in_network: the value is not an address")),
                },
                Subject::Int(_) => {
                    Err(located(lua, "haka.policy.ipv4_in_network: the value is not an address"))
                }
            },
        }
    }

    /// A learning criterion records `s` (nil is not recorded).
    pub(super) fn learn(&self, lua: &Lua, s: &Subject) -> mlua::Result<()> {
        if s.is_nil() {
            return Ok(());
        }
        let mut state = self.state.try_lock().ok_or_else(|| located(lua, "policy criterion busy"))?;
        match &mut *state {
            State::Set(items) => {
                for v in items.iter() {
                    if equal(v, s)? {
                        return Ok(());
                    }
                }
                items.push(s.to_value(lua)?);
            }
            State::Bounds(b) => {
                let v = s.to_value(lua)?;
                *b = Some(match b.take() {
                    None => (v.clone(), v),
                    Some((lo, hi)) => {
                        let lo = if less(lua, s, &Subject::Lua(lo.clone()), true)? { v.clone() } else { lo };
                        let hi = if less(lua, &Subject::Lua(hi.clone()), s, true)? { v } else { hi };
                        (lo, hi)
                    }
                });
            }
            _ => {}
        }
        Ok(())
    }
}

/// The criterion object `v` is, if it is one.
pub(super) fn criterion_of(v: &Value) -> Option<Arc<Criterion>> {
    match v {
        Value::UserData(ud) => ud.borrow::<CriterionUd>().ok().map(|c| Arc::clone(&c.0)),
        _ => None,
    }
}

/// True if `v` is an uncalled criterion kind (`haka.policy.present`).
pub(super) fn is_kind(v: &Value) -> bool {
    matches!(v, Value::UserData(ud) if ud.is::<KindUd>())
}

/// The kind `v` names (`haka.policy.learn`'s argument).
pub(super) fn kind_of(v: &Value) -> Option<Kind> {
    match v {
        Value::UserData(ud) => ud.borrow::<KindUd>().ok().map(|k| k.0),
        _ => None,
    }
}
