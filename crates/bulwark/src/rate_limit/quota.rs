use std::{fmt, str::FromStr, time::Duration};

/// A limit such as `5/minute`: at most `limit` requests in any `period`, refilling smoothly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quota {
    limit: u32,
    period: Duration,
}

/// A limit string that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid rate limit {0:?}: expected N/second, N/minute, N/hour or N/day with N >= 1 (e.g. \"5/minute\")"
)]
pub struct QuotaError(pub String);

impl FromStr for Quota {
    type Err = QuotaError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || QuotaError(s.to_owned());
        let (n, unit) = s.trim().split_once('/').ok_or_else(err)?;
        let limit: u32 = n.trim().parse().map_err(|_| err())?;
        let period = match unit.trim() {
            "second" | "s" => Duration::from_secs(1),
            "minute" | "m" => Duration::from_secs(60),
            "hour" | "h" => Duration::from_secs(3600),
            "day" | "d" => Duration::from_secs(86_400),
            _ => return Err(err()),
        };
        if limit == 0 || limit > 1_000_000 {
            return Err(err());
        }
        Ok(Self { limit, period })
    }
}

impl<'de> serde::Deserialize<'de> for Quota {
    /// From its text form (`"5/minute"`, [`FromStr`]); the error names what is allowed.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.period.as_secs() {
            1 => "second",
            60 => "minute",
            3600 => "hour",
            _ => "day",
        };
        write!(f, "{}/{}", self.limit, unit)
    }
}

impl Quota {
    /// `limit` per `period`.
    ///
    /// # Panics
    /// If `limit` is 0 or `period` is shorter than a microsecond per request.
    pub fn new(limit: u32, period: Duration) -> Self {
        assert!(limit > 0, "a quota admits at least one request");
        assert!(
            period.as_micros() >= u128::from(limit),
            "period too short for the limit"
        );
        Self { limit, period }
    }

    /// Requests admitted per period.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// The period in microseconds.
    pub fn period_us(&self) -> i64 {
        i64::try_from(self.period.as_micros()).unwrap_or(i64::MAX)
    }

    /// The emission interval: one request's worth of time, in microseconds, rounded up so that
    /// `limit` intervals never take less than the period (the sustained rate never exceeds the
    /// quota).
    pub fn interval_us(&self) -> i64 {
        let limit = i64::from(self.limit);
        ((self.period_us() + limit - 1) / limit).max(1)
    }

    /// The burst tolerance: `limit` emission intervals, in microseconds (the period, or a few
    /// microseconds more when the period is not a multiple of the limit). A fresh key admits
    /// exactly `limit` requests at once.
    pub fn burst_us(&self) -> i64 {
        self.interval_us().saturating_mul(i64::from(self.limit))
    }

    /// One step of the Generic Cell Rate Algorithm.
    ///
    /// `tat` is the stored theoretical arrival time (µs; `None` for a fresh key), `now` the
    /// current time (µs). Answers the decision and, when admitted, the new TAT to store.
    /// A key holds exactly one timestamp, whatever the limit, and the count is exact: `limit`
    /// back-to-back requests pass, the next one waits one interval.
    ///
    /// Any pair of times is answered exactly, without overflow: the arithmetic is done in 128
    /// bits, and a TAT that would not fit in an `i64` refuses.
    pub fn gcra(&self, tat: Option<i64>, now: i64) -> (Decision, Option<i64>) {
        // Comparing the debt with the burst tolerance, not the period: with a period that is not
        // a multiple of the limit, the period holds more than `limit` (truncated) intervals.
        let period = i128::from(self.burst_us());
        let interval = i128::from(self.interval_us());
        let now_wide = i128::from(now);
        let tat = i128::from(tat.unwrap_or(now).max(now));
        let new_tat = tat + interval;
        let debt = new_tat - now_wide;
        let storable = i64::try_from(new_tat).ok();
        let Some(stored) = storable.filter(|_| debt <= period) else {
            let retry = debt - period;
            let decision = Decision {
                allowed: false,
                limit: self.limit,
                remaining: 0,
                reset_secs: ceil_secs(tat - now_wide),
                retry_after_secs: ceil_secs(retry).max(1),
            };
            return (decision, None);
        };
        let remaining = u32::try_from((period - debt) / interval).unwrap_or(0);
        let decision = Decision {
            allowed: true,
            limit: self.limit,
            remaining: remaining.min(self.limit),
            reset_secs: ceil_secs(debt),
            retry_after_secs: 0,
        };
        (decision, Some(stored))
    }
}

fn ceil_secs(us: i128) -> u64 {
    let secs = u128::try_from(us).unwrap_or(0).div_ceil(1_000_000);
    u64::try_from(secs).unwrap_or(u64::MAX)
}

/// The outcome of one check against one quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Admitted?
    pub allowed: bool,
    /// The quota's limit (`RateLimit-Limit`).
    pub limit: u32,
    /// Requests left right now (`RateLimit-Remaining`).
    pub remaining: u32,
    /// Seconds until the quota is whole again (`RateLimit-Reset`).
    pub reset_secs: u64,
    /// When refused, seconds until a request would pass (`Retry-After`).
    pub retry_after_secs: u64,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn quotas_parse_in_the_contract_forms() {
        assert_eq!(
            "5/minute".parse::<Quota>().unwrap(),
            Quota::new(5, Duration::from_secs(60))
        );
        assert_eq!(
            "600/minute".parse::<Quota>().unwrap().interval_us(),
            100_000
        );
        assert_eq!(
            "1/day".parse::<Quota>().unwrap().period(),
            Duration::from_secs(86_400)
        );
        assert_eq!(" 10 / second ".parse::<Quota>().unwrap().limit(), 10);
        for bad in [
            "",
            "5",
            "0/minute",
            "-1/minute",
            "5/fortnight",
            "five/minute",
            "5/",
        ] {
            assert!(bad.parse::<Quota>().is_err(), "{bad}");
        }
        assert_eq!("5/minute".parse::<Quota>().unwrap().to_string(), "5/minute");
    }

    #[test]
    fn exactly_limit_requests_pass_in_a_burst_then_one_per_interval() {
        let q: Quota = "5/minute".parse().unwrap();
        let mut tat = None;
        let now = 1_000_000_000;
        for i in 0..5 {
            let (d, next) = q.gcra(tat, now);
            assert!(d.allowed, "request {i}");
            assert_eq!(d.remaining, 4 - i);
            tat = next;
        }
        let (d, next) = q.gcra(tat, now);
        assert!(!d.allowed);
        assert!(next.is_none());
        assert_eq!(d.retry_after_secs, 12);
        assert_eq!(d.reset_secs, 60);
        // One interval later, one more passes.
        let (d, _) = q.gcra(tat, now + 12_000_000);
        assert!(d.allowed);
        assert_eq!(d.remaining, 0);
        // After a whole period the quota is whole again.
        let (d, _) = q.gcra(tat, now + 60_000_000);
        assert!(d.allowed);
        assert_eq!(d.remaining, 4);
    }

    /// Found by fuzzing (fuzz target `rate_limit`): when the period is not a multiple of the
    /// limit, the truncated interval let a burst exceed the limit (1616/second admitted 1618 at
    /// once, and reported 1616 remaining after the first).
    #[test]
    fn a_burst_is_exactly_the_limit_whatever_the_period() {
        for text in [
            "1616/second",
            "7/minute",
            "999999/second",
            "1000000/second",
            "3/hour",
        ] {
            let q: Quota = text.parse().unwrap();
            assert!(q.burst_us() >= q.period_us(), "{text}");
            assert!(
                q.burst_us() < q.period_us() + i64::from(q.limit()),
                "{text}"
            );
            let now = 1_000_000_000;
            let mut tat = None;
            for i in 0..q.limit() {
                let (d, next) = q.gcra(tat, now);
                assert!(d.allowed, "{text}: request {i}");
                assert_eq!(d.remaining, q.limit() - 1 - i, "{text}: request {i}");
                tat = next;
            }
            assert!(!q.gcra(tat, now).0.allowed, "{text}: one past the limit");
        }
    }

    /// Found by fuzzing (fuzz target `rate_limit`): times near the ends of `i64` overflowed.
    #[test]
    fn extreme_times_do_not_overflow() {
        let q: Quota = "600/minute".parse().unwrap();
        let (d, next) = q.gcra(Some(i64::MAX), i64::MIN);
        assert!(!d.allowed && next.is_none() && d.retry_after_secs >= 1);
        let (d, next) = q.gcra(Some(i64::MAX - 1), i64::MAX - 1);
        assert!(
            !d.allowed && next.is_none(),
            "saturated at the end of time: {d:?}"
        );
        let (d, next) = q.gcra(None, i64::MIN);
        assert!(d.allowed && next == Some(i64::MIN + q.interval_us()));
    }
}
