//! `pkt.timestamp`: Haka's time object. `secs` and `nsecs` (whole seconds
//! and the nanoseconds past them), `seconds` (a float), `tostring` in
//! C's `ctime` layout (`Mon Jan 20 16:44:43 2014`, in UTC so offline runs
//! print the same everywhere), and comparisons.

use mlua::{MetaMethod, UserData, UserDataFields, UserDataMethods};

use crate::time::Timestamp;

/// A point in packet time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimeUd(pub Timestamp);

impl TimeUd {
    fn secs(self) -> i64 {
        i64::try_from(self.0.as_micros() / 1_000_000).unwrap_or(i64::MAX)
    }

    fn nsecs(self) -> i64 {
        // Below 10^9: always fits.
        (self.0.as_micros() % 1_000_000) as i64 * 1000
    }
}

impl UserData for TimeUd {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        fields.add_field_method_get("secs", |_, this| Ok(this.secs()));
        fields.add_field_method_get("nsecs", |_, this| Ok(this.nsecs()));
        fields.add_field_method_get("seconds", |_, this| Ok(this.0.as_secs_f64()));
    }

    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_meta_method(MetaMethod::ToString, |_, this, ()| Ok(ctime(this.secs())));
        methods.add_meta_function(MetaMethod::Eq, |_, (a, b): (TimeUd, TimeUd)| Ok(a == b));
        methods.add_meta_function(MetaMethod::Lt, |_, (a, b): (TimeUd, TimeUd)| Ok(a < b));
        methods.add_meta_function(MetaMethod::Le, |_, (a, b): (TimeUd, TimeUd)| Ok(a <= b));
    }
}

impl mlua::FromLua for TimeUd {
    fn from_lua(v: mlua::Value, _: &mlua::Lua) -> mlua::Result<Self> {
        match v {
            mlua::Value::UserData(ud) => Ok(*ud.borrow::<TimeUd>()?),
            other => Err(mlua::Error::runtime(format!("a time object expected, got {}", other.type_name()))),
        }
    }
}

const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] =
    ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// `secs` since the epoch as C's `ctime` shows it, in UTC.
pub fn ctime(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let s = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    // 1970-01-01 was a Thursday.
    let wd = DAYS[(days + 4).rem_euclid(7) as usize];
    let mon = MONTHS[(m - 1) as usize];
    format!("{wd} {mon} {d:2} {:02}:{:02}:{:02} {y}", s / 3600, s / 60 % 60, s % 60)
}

/// (year, month 1..=12, day 1..=31) of a day count since 1970-01-01, in
/// the proleptic Gregorian calendar (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctime_matches_c() {
        // Haka's own timestamp test capture (its reference shows local time).
        assert_eq!(ctime(1_390_236_283), "Mon Jan 20 16:44:43 2014");
        assert_eq!(ctime(0), "Thu Jan  1 00:00:00 1970");
        assert_eq!(ctime(951_782_400), "Tue Feb 29 00:00:00 2000");
        assert_eq!(ctime(1_700_000_000), "Tue Nov 14 22:13:20 2023");
        assert_eq!(ctime(-1), "Wed Dec 31 23:59:59 1969");
    }
}
