//! The synthetic SDC rig: its files load, its loops have a memristor's fingerprint, and it is
//! deterministic by seed.

// Inside `mod memristor` so that `cargo test memristor` selects these tests.
mod memristor {
    use odeflash_reference::memristor::data::{Measured, MemristorDataset, Split};
    use odeflash_reference::memristor::synth::{
        self, paper_grid, SdcDevice, SimSettings, SynthConfig, Trace,
    };
    use odeflash_reference::rng::Rng;

    fn small(seed: u64) -> SynthConfig {
        SynthConfig {
            periods: 2,
            samples_per_period: 200,
            warmup_periods: 3,
            ..SynthConfig::paper(2, 200, seed)
        }
    }

    #[test]
    fn generated_data_round_trips_through_the_loader() {
        let dir = tempfile::tempdir().unwrap();
        let config = small(5);
        let report = synth::write_synthetic_with(dir.path(), &config).unwrap();
        assert_eq!(report.files.len(), 18);
        assert_eq!(report.samples, 18 * 400);
        let ds = MemristorDataset::load(dir.path()).unwrap();
        assert_eq!(ds.trajectories.len(), 18);
        assert_eq!(ds.validation().len(), 4);
        let lsb = config.daq.lsb();
        for (t, p) in ds.trajectories.iter().zip(paper_grid()) {
            assert_eq!(t.len(), 400);
            assert_eq!(
                (t.amplitude, t.frequency, t.split),
                (p.amplitude, p.frequency, p.split)
            );
            assert_eq!(t.measured, Measured::Both);
            assert!((t.dt - 1.0 / (p.frequency * 200.0)).abs() < 1e-12 * t.dt.max(1.0));
            assert_eq!(t.r_s, synth::SYNTH_SERIES_RESISTANCE);
            // Both channels measured: they agree with the series resistor up to DAQ noise.
            let mut worst: f64 = 0.0;
            for k in 0..t.len() {
                let r = f64::from(t.v_s[k]) - f64::from(t.v[k]) - t.r_s * f64::from(t.i[k]);
                worst = worst.max(r.abs());
            }
            assert!(worst < 20.0 * lsb, "{}: {worst}", t.name);
            // Quantized to the ADC's grid (to the 7 decimals written).
            let code = (f64::from(t.v[3]) + 10.0) / lsb;
            assert!((code - code.round()).abs() < 1e-3, "{code}");
        }
        let val: Vec<(f64, f64)> = ds
            .split(Split::Validation)
            .map(|t| (t.amplitude, t.frequency))
            .collect();
        assert_eq!(val, vec![(0.5, 5.0), (1.0, 1.0), (1.0, 100.0), (1.5, 5.0)]);
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_noise() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let c = tempfile::tempdir().unwrap();
        let mut one_thread = small(9);
        one_thread.threads = 1;
        synth::write_synthetic_with(a.path(), &small(9)).unwrap();
        synth::write_synthetic_with(b.path(), &one_thread).unwrap();
        synth::write_synthetic_with(c.path(), &small(10)).unwrap();
        for f in ["manifest.toml", "sdc_1.0V_020Hz.csv", "sdc_0.5V_001Hz.csv"] {
            let x = std::fs::read(a.path().join(f)).unwrap();
            let y = std::fs::read(b.path().join(f)).unwrap();
            assert_eq!(x, y, "{f}");
        }
        let x = std::fs::read(a.path().join("sdc_1.0V_020Hz.csv")).unwrap();
        let z = std::fs::read(c.path().join("sdc_1.0V_020Hz.csv")).unwrap();
        assert_ne!(x, z);
    }

    fn trace(amplitude: f64, frequency: f64, substep_factor: f64) -> Trace {
        let device = SdcDevice {
            drift_sigma: 0.0,
            ..SdcDevice::default()
        };
        device.simulate(
            &SimSettings {
                amplitude,
                frequency,
                r_s: synth::SYNTH_SERIES_RESISTANCE,
                periods: 1,
                samples_per_period: 1000,
                warmup_periods: 5,
                substep_factor,
            },
            &mut Rng::new(1),
        )
    }

    /// Sum of the two lobes' areas `|closed integral of i dv|` over one period, V*A.
    fn lobe_area(t: &Trace) -> f64 {
        let n = t.v.len();
        let (mut pos, mut neg) = (0.0, 0.0);
        for k in 0..n - 1 {
            let c = 0.5 * (t.i[k] + t.i[k + 1]) * (t.v[k + 1] - t.v[k]);
            if k < n / 2 {
                pos += c;
            } else {
                neg += c;
            }
        }
        f64::abs(pos) + f64::abs(neg)
    }

    #[test]
    fn pinched_hysteresis_that_shrinks_with_frequency() {
        for amplitude in [0.5, 1.0, 1.5] {
            let scale = amplitude * amplitude / synth::SYNTH_SERIES_RESISTANCE;
            let area = |f: f64| lobe_area(&trace(amplitude, f, 1.0)) / scale;
            // Pinched: wherever the voltage crosses zero, so does the current.
            for f in [1.0, 10.0, 100.0] {
                let t = trace(amplitude, f, 1.0);
                let i_max = t.i.iter().fold(0.0_f64, |m, i| m.max(i.abs()));
                let mut crossings = 0;
                for k in 0..t.v.len() - 1 {
                    if t.v[k] * t.v[k + 1] < 0.0 {
                        let s = -t.v[k] / (t.v[k + 1] - t.v[k]);
                        let i0 = t.i[k] + s * (t.i[k + 1] - t.i[k]);
                        assert!(
                            i0.abs() < 1e-3 * i_max,
                            "{amplitude} V {f} Hz sample {k}: {i0}"
                        );
                        crossings += 1;
                    }
                }
                assert!(crossings >= 1, "{amplitude} V {f} Hz");
            }
            // Hysteretic at low frequency, shrinking at high frequency, a line in the limit.
            let (a1, a5, a10, a100, a10k) =
                (area(1.0), area(5.0), area(10.0), area(100.0), area(1e4));
            assert!(a1 > 0.05 && a5 > 0.1, "{amplitude} V: {a1} {a5}");
            assert!(
                a100 < 0.7 * a10,
                "{amplitude} V: 10 Hz {a10}, 100 Hz {a100}"
            );
            assert!(
                a10k < 0.02 * a10,
                "{amplitude} V: 10 Hz {a10}, 10 kHz {a10k}"
            );
        }
    }

    #[test]
    fn substeps_are_converged() {
        for (amplitude, f) in [(1.5, 1.0), (1.0, 20.0), (0.5, 100.0)] {
            let a = trace(amplitude, f, 1.0);
            let b = trace(amplitude, f, 8.0);
            let i_max = a.i.iter().fold(0.0_f64, |m, i| m.max(i.abs()));
            let worst =
                a.i.iter()
                    .zip(&b.i)
                    .fold(0.0_f64, |m, (p, q)| m.max((p - q).abs()));
            assert!(
                worst < 2e-3 * i_max,
                "{amplitude} V {f} Hz: {:e}",
                worst / i_max
            );
        }
    }

    #[test]
    fn device_stays_in_the_papers_conductance_range() {
        for amplitude in [0.5, 1.5] {
            for f in [1.0, 100.0] {
                let t = trace(amplitude, f, 1.0);
                for k in 0..t.v.len() {
                    if t.v[k].abs() > 0.05 {
                        let g = t.i[k] / t.v[k];
                        assert!(g > 5e-6 && g < 2e-3, "G = {g} at {amplitude} V {f} Hz");
                    }
                    let s = &t.state[k];
                    assert!((0.0..=1.0).contains(&s.x1) && (0.0..=1.0).contains(&s.x2));
                    assert!(s.temp >= 296.0 && s.temp < 340.0);
                }
            }
        }
    }
}
