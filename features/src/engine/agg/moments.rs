//! Invertible aggregates: they forget an event by subtracting it.
//!
//! Floating-point subtraction drifts, so sums are compensated (Neumaier)
//! and every aggregate returns to exact zero when its window empties: drift
//! cannot outlive the events that caused it.

use serde::{Deserialize, Serialize};

use crate::engine::value::Scalar;

/// Number of events (or of non-null values of a column).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Count {
    n: i64,
}

impl Count {
    /// Counts a value in.
    pub fn add(&mut self, v: &Scalar) {
        if !v.is_null() {
            self.n += 1;
        }
    }

    /// Takes a value out: it left the window.
    pub fn remove(&mut self, v: &Scalar) {
        if !v.is_null() {
            self.n -= 1;
        }
    }

    /// The aggregate over the values counted in.
    pub fn value(&self) -> Scalar {
        Scalar::Long(self.n)
    }
}

/// A compensated float sum (Neumaier's variant of Kahan summation).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct KahanSum {
    sum: f64,
    compensation: f64,
}

impl KahanSum {
    pub fn add(&mut self, x: f64) {
        let t = self.sum + x;
        if self.sum.abs() >= x.abs() {
            self.compensation += (self.sum - t) + x;
        } else {
            self.compensation += (x - t) + self.sum;
        }
        self.sum = t;
    }

    pub fn get(&self) -> f64 {
        self.sum + self.compensation
    }
}

/// Sum of a column: exact integers for long columns (kept in i128, so no
/// window can overflow it), compensated floats for doubles.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sum {
    integer: bool,
    n: i64,
    int: i128,
    float: KahanSum,
}

impl Sum {
    /// A sum; `integer` keeps it exact in 64-bit integers.
    pub fn new(integer: bool) -> Sum {
        Sum {
            integer,
            n: 0,
            int: 0,
            float: KahanSum::default(),
        }
    }

    /// Counts a value in.
    pub fn add(&mut self, v: &Scalar) {
        match v {
            Scalar::Long(x) => self.int += *x as i128,
            Scalar::Double(x) => self.float.add(*x),
            _ => return,
        }
        self.n += 1;
    }

    /// Takes a value out: it left the window.
    pub fn remove(&mut self, v: &Scalar) {
        match v {
            Scalar::Long(x) => self.int -= *x as i128,
            Scalar::Double(x) => self.float.add(-*x),
            _ => return,
        }
        self.n -= 1;
        if self.n == 0 {
            self.reset();
        }
    }

    /// Forgets every value (a tumbling or hopping window starts over).
    pub fn reset(&mut self) {
        *self = Sum::new(self.integer);
    }

    /// The aggregate over the values counted in.
    pub fn value(&self) -> Scalar {
        if self.integer {
            Scalar::Long(self.int.clamp(i64::MIN as i128, i64::MAX as i128) as i64)
        } else {
            Scalar::Double(self.float.get())
        }
    }
}

/// Which moment a [`Moments`] reports.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub enum Stat {
    Mean,
    Variance,
    Stddev,
}

/// Count, mean and sum of squared deviations of some values: a monoid,
/// merged with Chan et al.'s parallel formula, which never subtracts.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Welford {
    n: f64,
    mean: f64,
    m2: f64,
}

impl Welford {
    fn of(x: f64) -> Welford {
        Welford {
            n: 1.0,
            mean: x,
            m2: 0.0,
        }
    }

    fn merge(a: Welford, b: Welford) -> Welford {
        if a.n == 0.0 {
            return b;
        }
        if b.n == 0.0 {
            return a;
        }
        let n = a.n + b.n;
        let delta = b.mean - a.mean;
        Welford {
            n,
            mean: a.mean + delta * b.n / n,
            m2: a.m2 + b.m2 + delta * delta * a.n * b.n / n,
        }
    }
}

/// Mean and sample variance.
///
/// The mean is the compensated sum over n, as a batch engine computes it.
/// The variance must not be computed by subtracting evicted values: that
/// drifts (a window of equal values would read a tiny non-zero variance).
/// On evicting windows it uses the *two-stacks* queue instead: values enter
/// a back stack with a running aggregate; when the front stack is empty at
/// an eviction, the back stack is flipped into suffix aggregates. Each value
/// is moved once, so eviction is amortised O(1), and only additions and
/// merges are ever computed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Moments {
    stat: Stat,
    evicts: bool,
    n: i64,
    sum: KahanSum,
    /// Suffix aggregates of the front values, the oldest value's last.
    front: Vec<Welford>,
    /// Values after the front, oldest first, and their aggregate.
    back: Vec<f64>,
    back_agg: Welford,
}

impl Moments {
    /// Moments for `stat`; `evicts` when values can leave the window.
    pub fn new(stat: Stat, evicts: bool) -> Moments {
        Moments {
            stat,
            evicts,
            n: 0,
            sum: KahanSum::default(),
            front: Vec::new(),
            back: Vec::new(),
            back_agg: Welford::default(),
        }
    }

    /// Counts a value in.
    pub fn add(&mut self, v: &Scalar) {
        let Some(x) = v.as_f64() else { return };
        self.n += 1;
        self.sum.add(x);
        if self.evicts {
            self.back.push(x);
        }
        self.back_agg = Welford::merge(self.back_agg, Welford::of(x));
    }

    /// Takes a value out: it left the window.
    pub fn remove(&mut self, v: &Scalar) {
        let Some(x) = v.as_f64() else { return };
        if self.n <= 1 {
            self.reset();
            return;
        }
        self.n -= 1;
        self.sum.add(-x);
        if self.front.is_empty() {
            let mut acc = Welford::default();
            for x in self.back.drain(..).rev() {
                acc = Welford::merge(Welford::of(x), acc);
                self.front.push(acc);
            }
            self.back_agg = Welford::default();
        }
        self.front.pop();
    }

    /// Forgets every value (a tumbling or hopping window starts over).
    pub fn reset(&mut self) {
        *self = Moments::new(self.stat, self.evicts);
    }

    /// The aggregate over the values counted in.
    pub fn value(&self) -> Scalar {
        let all = Welford::merge(
            self.front.last().copied().unwrap_or_default(),
            self.back_agg,
        );
        let variance = || (self.n >= 2).then(|| all.m2.max(0.0) / (self.n - 1) as f64);
        let out = match self.stat {
            Stat::Mean => (self.n > 0).then(|| self.sum.get() / self.n as f64),
            Stat::Variance => variance(),
            Stat::Stddev => variance().map(f64::sqrt),
        };
        out.map_or(Scalar::Null, Scalar::Double)
    }

    /// Bytes of state held, for the state metrics.
    pub fn size_bytes(&self) -> usize {
        self.front.len() * 24 + self.back.len() * 8
    }
}

/// Sum of values weighted by `2^-(age / half_life)`, kept as a sum valid
/// at a reference time and rescaled when time moves.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Decayed {
    half_life: f64,
    n: i64,
    at: i64,
    sum: KahanSum,
}

impl Decayed {
    /// A sum whose terms halve every `half_life_ms` of event time.
    pub fn new(half_life_ms: i64) -> Decayed {
        Decayed {
            half_life: half_life_ms as f64,
            n: 0,
            at: i64::MIN,
            sum: KahanSum::default(),
        }
    }

    fn weight(&self, from: i64, to: i64) -> f64 {
        (-((to - from) as f64) / self.half_life).exp2()
    }

    /// Counts a value in, at event time `ts`.
    pub fn add(&mut self, ts: i64, v: &Scalar) {
        let Some(x) = v.as_f64() else { return };
        if self.n == 0 {
            self.at = ts;
        } else if ts > self.at {
            let scaled = self.sum.get() * self.weight(self.at, ts);
            self.sum = KahanSum::default();
            self.sum.add(scaled);
            self.at = ts;
        }
        self.sum.add(x * self.weight(ts, self.at));
        self.n += 1;
    }

    /// Takes out the value added at `ts`: it left the window.
    pub fn remove(&mut self, ts: i64, v: &Scalar) {
        let Some(x) = v.as_f64() else { return };
        self.n -= 1;
        if self.n <= 0 {
            self.reset();
        } else {
            self.sum.add(-x * self.weight(ts, self.at));
        }
    }

    /// Forgets every value (a tumbling or hopping window starts over).
    pub fn reset(&mut self) {
        *self = Decayed::new(self.half_life as i64);
    }

    /// The decayed sum as of `as_of`.
    pub fn value(&self, as_of: i64) -> Scalar {
        if self.n == 0 {
            return Scalar::Double(0.0);
        }
        Scalar::Double(self.sum.get() * self.weight(self.at, as_of))
    }
}
