//! Haka's time objects (`haka.time`): `pkt.timestamp`, `haka.network_time()`,
//! `flow.start_time`, `flow.last_activity`. Packet time, never the wall
//! clock, so an offline run of a rate or window rule gives the same answer
//! every time.
//!
//! Fields as in Haka: `secs`, `nsecs`, `seconds` (a float); `tostring`
//! gives Haka's `ctime` form (`Mon Jan 20 17:44:43 2014`, in UTC). sluice
//! adds comparisons (`==`, `<`, `<=`) and subtraction (`t2 - t1` is the
//! difference in seconds, a float), which rate rules need.

use mlua::{Lua, MetaMethod, UserData, UserDataFields, UserDataMethods};

use super::context::context;
use super::error::located;
use crate::time::Timestamp;

/// A point in packet time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct TimeUd(pub Timestamp);

impl TimeUd {
    fn secs(self) -> u64 {
        self.0.as_micros() / 1_000_000
    }

    fn nsecs(self) -> u64 {
        (self.0.as_micros() % 1_000_000) * 1000
    }
}

const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] =
    ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// `ctime`-style text of `secs` since the epoch, in UTC.
pub(super) fn ctime(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let wday = DAYS[(days % 7) as usize];
    let mon = MONTHS[(month - 1) as usize];
    format!("{wday} {mon} {day:2} {h:02}:{m:02}:{s:02} {year}")
}

impl UserData for TimeUd {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        fields.add_field_method_get("secs", |_, this| Ok(this.secs()));
        fields.add_field_method_get("nsecs", |_, this| Ok(this.nsecs()));
        fields.add_field_method_get("seconds", |_, this| Ok(this.0.as_secs_f64()));
    }

    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_meta_method(MetaMethod::ToString, |_, this, ()| Ok(ctime(this.secs())));
        methods
            .add_meta_method(MetaMethod::Eq, |_, this, other: mlua::UserDataRef<TimeUd>| Ok(*this == *other));
        methods
            .add_meta_method(MetaMethod::Lt, |_, this, other: mlua::UserDataRef<TimeUd>| Ok(*this < *other));
        methods
            .add_meta_method(MetaMethod::Le, |_, this, other: mlua::UserDataRef<TimeUd>| Ok(*this <= *other));
        methods.add_meta_method(MetaMethod::Sub, |_, this, other: mlua::UserDataRef<TimeUd>| {
            Ok((this.0.as_micros() as f64 - other.0.as_micros() as f64) / 1e6)
        });
    }
}

/// `haka.time(seconds)`: a time object from a number of seconds.
pub(super) fn haka_time(lua: &Lua, secs: f64) -> mlua::Result<TimeUd> {
    if !secs.is_finite() || secs < 0.0 {
        return Err(located(lua, "haka.time: seconds must be a non-negative number"));
    }
    Ok(TimeUd(Timestamp((secs * 1e6).round() as u64)))
}

/// `haka.network_time()`: the packet time of the running event (of the
/// last event, between events).
pub(super) fn network_time(lua: &Lua, (): ()) -> mlua::Result<TimeUd> {
    Ok(TimeUd(context(lua)?.time.get()))
}

#[cfg(test)]
mod tests {
    use super::ctime;

    #[test]
    fn ctime_matches_known_dates() {
        // Haka's reference output for its timestamp test capture.
        assert_eq!(ctime(1_390_236_283), "Mon Jan 20 16:44:43 2014");
        assert_eq!(ctime(0), "Thu Jan  1 00:00:00 1970");
        assert_eq!(ctime(951_782_400), "Tue Feb 29 00:00:00 2000");
        assert_eq!(ctime(4_102_444_799), "Thu Dec 31 23:59:59 2099");
    }
}
