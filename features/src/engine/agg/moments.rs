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
    pub fn add(&mut self, v: &Scalar) {
        if !v.is_null() {
            self.n += 1;
        }
    }

    pub fn remove(&mut self, v: &Scalar) {
        if !v.is_null() {
            self.n -= 1;
        }
    }

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
    pub fn new(integer: bool) -> Sum {
        Sum {
            integer,
            n: 0,
            int: 0,
            float: KahanSum::default(),
        }
    }

    pub fn add(&mut self, v: &Scalar) {
        match v {
            Scalar::Long(x) => self.int += *x as i128,
            Scalar::Double(x) => self.float.add(*x),
            _ => return,
        }
        self.n += 1;
    }

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

    pub fn reset(&mut self) {
        *self = Sum::new(self.integer);
    }

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

/// Mean and sample variance. The mean is the compensated sum over n (as a
/// batch engine computes it); the variance uses Welford's update, which has
/// an exact inverse for removal.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Moments {
    stat: Stat,
    n: i64,
    sum: KahanSum,
    mean: f64,
    m2: f64,
}

impl Moments {
    pub fn new(stat: Stat) -> Moments {
        Moments {
            stat,
            n: 0,
            sum: KahanSum::default(),
            mean: 0.0,
            m2: 0.0,
        }
    }

    pub fn add(&mut self, v: &Scalar) {
        let Some(x) = v.as_f64() else { return };
        self.n += 1;
        self.sum.add(x);
        let delta = x - self.mean;
        self.mean += delta / self.n as f64;
        self.m2 += delta * (x - self.mean);
    }

    pub fn remove(&mut self, v: &Scalar) {
        let Some(x) = v.as_f64() else { return };
        if self.n <= 1 {
            self.reset();
            return;
        }
        self.sum.add(-x);
        let n = self.n as f64;
        let mean_without = (n * self.mean - x) / (n - 1.0);
        self.m2 = (self.m2 - (x - self.mean) * (x - mean_without)).max(0.0);
        self.mean = mean_without;
        self.n -= 1;
    }

    pub fn reset(&mut self) {
        *self = Moments::new(self.stat);
    }

    pub fn value(&self) -> Scalar {
        let variance = || (self.n >= 2).then(|| self.m2 / (self.n - 1) as f64);
        let out = match self.stat {
            Stat::Mean => (self.n > 0).then(|| self.sum.get() / self.n as f64),
            Stat::Variance => variance(),
            Stat::Stddev => variance().map(f64::sqrt),
        };
        out.map_or(Scalar::Null, Scalar::Double)
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

    pub fn remove(&mut self, ts: i64, v: &Scalar) {
        let Some(x) = v.as_f64() else { return };
        self.n -= 1;
        if self.n <= 0 {
            self.reset();
        } else {
            self.sum.add(-x * self.weight(ts, self.at));
        }
    }

    pub fn reset(&mut self) {
        *self = Decayed::new(self.half_life as i64);
    }

    pub fn value(&self, as_of: i64) -> Scalar {
        if self.n == 0 {
            return Scalar::Double(0.0);
        }
        Scalar::Double(self.sum.get() * self.weight(self.at, as_of))
    }
}
