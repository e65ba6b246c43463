//! Whether a paper is sent for a topic, as a calibrated probability: a
//! logistic model over the fused evidence of one (topic, paper) pair,
//! fitted on judged sets instead of hand-set floors. "Nothing fits" is
//! then what happens when no paper's probability reaches the threshold.
//!
//! Pure: the features come from the dense side's fusion (`dense.rs`); the
//! fit is a plain function the relevance bench calls on the judgements.

/// Number of features of a (topic, paper) pair.
pub const FEATURES: usize = 8;

/// What each feature is, in order (the bench prints the coefficients under
/// these names).
pub const FEATURE_NAMES: [&str; FEATURES] = [
    "lexical",
    "coverage",
    "exact",
    "cosine",
    "z",
    "subject",
    "subject*fit",
    "top",
];

/// One (topic, paper) pair's evidence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evidence {
    /// Lexical relevance in `[0, 1]` (0 without a word match).
    pub lexical: f32,
    /// Share of the topic's terms the paper contains.
    pub coverage: f32,
    /// Every word of the topic, as a phrase for a multi-word topic.
    pub exact: bool,
    /// Cosine of the paper's and the topic's vectors.
    pub cosine: f32,
    /// The cosine in standard deviations above the day's mean.
    pub z: f32,
    /// 1 when the paper's primary subject is one the topic maps to, 0.5
    /// when it is cross-listed there, 0 otherwise.
    pub subject: f32,
    /// Cosine of the topic to the best subject it maps to (0 when none).
    pub subject_fit: f32,
    /// The day's highest cosine to the topic: whether anything of the
    /// day is close to it at all (a topic nothing fits has a low top).
    pub top: f32,
}

impl Evidence {
    pub fn features(&self) -> [f32; FEATURES] {
        [
            self.lexical,
            self.coverage,
            if self.exact { 1.0 } else { 0.0 },
            self.cosine,
            // Bounded: one outlier paper must not dominate the fit.
            self.z.clamp(-3.0, 6.0),
            self.subject,
            self.subject * self.subject_fit,
            self.top,
        ]
    }
}

/// A fitted model: one weight per feature, then the intercept, and the
/// probability from which a paper is sent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Calibration {
    pub weights: [f32; FEATURES + 1],
    pub threshold: f32,
}

impl Default for Calibration {
    /// Fitted by `cargo bench --bench relevance -- --fit` on set B
    /// (`tests/relevance/set-b/`, every (topic, paper) pair, relevant =
    /// grade ≥ 1), with MiniLM; held out: set A. The threshold is the one
    /// the same command chose on set B.
    fn default() -> Self {
        Calibration {
            weights: FITTED,
            threshold: THRESHOLD,
        }
    }
}

const FITTED: [f32; FEATURES + 1] = [
    0.595, 1.078, 1.337, 0.211, 1.134, 2.443, 1.790, -0.468, -5.420,
];
const THRESHOLD: f32 = 0.20;

impl Calibration {
    /// Probability that a paper with this evidence is about the topic.
    pub fn probability(&self, e: &Evidence) -> f32 {
        let x = e.features();
        let w = &self.weights;
        let s: f32 = w[FEATURES] + x.iter().zip(w).map(|(x, w)| x * w).sum::<f32>();
        1.0 / (1.0 + (-s).exp())
    }

    pub fn sends(&self, e: &Evidence) -> bool {
        self.probability(e) >= self.threshold
    }
}

/// Fits logistic regression weights (last: intercept) to `examples` by
/// gradient descent on the mean log loss with an L2 penalty `l2` on the
/// weights (not the intercept). Deterministic.
pub fn fit(examples: &[(Evidence, bool)], l2: f64, iterations: usize) -> [f32; FEATURES + 1] {
    let xs: Vec<[f64; FEATURES]> = examples
        .iter()
        .map(|(e, _)| e.features().map(f64::from))
        .collect();
    let ys: Vec<f64> = examples
        .iter()
        .map(|(_, y)| if *y { 1.0 } else { 0.0 })
        .collect();
    let n = xs.len().max(1) as f64;
    let mut w = [0f64; FEATURES + 1];
    // Adam: the features have different scales (z vs. shares).
    let (mut m, mut v) = ([0f64; FEATURES + 1], [0f64; FEATURES + 1]);
    let (b1, b2, rate) = (0.9, 0.999, 0.05);
    for t in 1..=iterations {
        let mut g = [0f64; FEATURES + 1];
        for (x, y) in xs.iter().zip(&ys) {
            let s = w[FEATURES] + x.iter().zip(&w).map(|(x, w)| x * w).sum::<f64>();
            let err = 1.0 / (1.0 + (-s).exp()) - y;
            for (gi, xi) in g.iter_mut().zip(x) {
                *gi += err * xi;
            }
            g[FEATURES] += err;
        }
        for (i, gi) in g.iter_mut().enumerate() {
            *gi /= n;
            if i < FEATURES {
                *gi += l2 * w[i];
            }
            m[i] = b1 * m[i] + (1.0 - b1) * *gi;
            v[i] = b2 * v[i] + (1.0 - b2) * *gi * *gi;
            let mh = m[i] / (1.0 - b1.powi(t as i32));
            let vh = v[i] / (1.0 - b2.powi(t as i32));
            w[i] -= rate * mh / (vh.sqrt() + 1e-8);
        }
    }
    w.map(|x| x as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(cosine: f32, subject: f32) -> Evidence {
        Evidence {
            lexical: 0.0,
            coverage: 0.0,
            exact: false,
            cosine,
            z: cosine * 10.0,
            subject,
            subject_fit: 0.6,
            top: 0.5,
        }
    }

    #[test]
    fn a_fitted_model_sends_what_its_examples_call_relevant_and_not_the_rest() {
        // Relevant: high cosine, or in the topic's subject; the rest low.
        let mut examples = Vec::new();
        for i in 0..40 {
            let c = i as f32 / 100.0;
            examples.push((ev(c, 0.0), c > 0.3));
            examples.push((ev(0.05, if i % 2 == 0 { 1.0 } else { 0.0 }), i % 2 == 0));
        }
        let w = fit(&examples, 1e-4, 800);
        let model = Calibration {
            weights: w,
            threshold: 0.5,
        };
        assert!(model.sends(&ev(0.38, 0.0)));
        assert!(!model.sends(&ev(0.1, 0.0)));
        assert!(model.sends(&ev(0.05, 1.0)));
        assert!(model.probability(&ev(0.38, 0.0)) > model.probability(&ev(0.2, 0.0)));
    }

    #[test]
    fn the_probability_is_a_logistic_of_the_weighted_evidence() {
        let mut weights = [0.0; FEATURES + 1];
        weights[3] = 10.0;
        weights[FEATURES] = -3.0;
        let model = Calibration {
            weights,
            threshold: 0.5,
        };
        assert!((model.probability(&ev(0.3, 0.0)) - 0.5).abs() < 1e-6);
        assert!(!model.sends(&ev(0.29, 0.0)));
        assert!(model.sends(&ev(0.31, 0.0)));
    }
}
