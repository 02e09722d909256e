//! Golden model files: their exact bytes, their outputs, and what every corruption of them does.
//!
//! `ODEFLASH_BLESS=1 cargo test -p odeflash-runtime --features std --test golden` rewrites the
//! files after an intended format change (which also needs a version bump, see FORMAT.md).

use std::path::PathBuf;

use odeflash_runtime::crc::crc32;
use odeflash_runtime::spec::examples::{self, random_mlp};
use odeflash_runtime::spec::{BoundSpec, DynamicsSpec, ModelSpec, Quant, ReadoutSpec};
use odeflash_runtime::{
    Activation, AlignedBlob, Circuit, DecodeError, IteratorForm, Model, SimConfig, Simulator,
    Solver,
};
use serde::{Deserialize, Serialize};

const DT: f32 = 1e-3;
const SAMPLES: usize = 200;

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn bless() -> bool {
    std::env::var_os("ODEFLASH_BLESS").is_some()
}

/// The golden models: every kind, both weight encodings, every activation somewhere.
fn goldens() -> Vec<(&'static str, ModelSpec, Quant)> {
    let single = examples::single_nn_memode(&[8, 8], 7);
    let dual = examples::dual_nn_memode(&[6, 6], 4, 2, 3);
    let iterator = ModelSpec {
        format_version: 1,
        name: "iterator-memristor".into(),
        dynamics: DynamicsSpec::Iterator {
            net: {
                let mut m = random_mlp(
                    2,
                    &[
                        (8, Activation::Tanh),
                        (8, Activation::LeakyRelu { slope: 0.01 }),
                        (1, Activation::Identity),
                    ],
                    11,
                );
                m.output_scale = vec![0.02];
                m
            },
            form: IteratorForm::Residual,
            dt: DT,
        },
        readout: ReadoutSpec::Linear {
            r_on: 1.0e3,
            r_off: 1.0e5,
        },
        circuit: Some(Circuit {
            series_resistance: 1.0e3,
        }),
        x0: vec![0.5],
        bounds: vec![BoundSpec {
            lower: Some(0.0),
            upper: Some(1.0),
        }],
    };
    let ode = ModelSpec {
        format_version: 1,
        name: "neural-ode".into(),
        dynamics: DynamicsSpec::Ode {
            f: {
                let mut m = random_mlp(
                    3,
                    &[
                        (8, Activation::Elu { alpha: 1.0 }),
                        (8, Activation::Sin),
                        (8, Activation::Softplus),
                        (8, Activation::Relu),
                        (2, Activation::Identity),
                    ],
                    5,
                );
                m.input_offset = vec![0.1, -0.2, 0.0];
                m.input_scale = vec![2.0, 0.5, 1.0];
                m.output_offset = vec![0.0, -0.5];
                m
            },
        },
        readout: ReadoutSpec::None,
        circuit: None,
        x0: vec![0.1, -0.1],
        bounds: vec![
            BoundSpec {
                lower: Some(-5.0),
                upper: None,
            },
            BoundSpec::default(),
        ],
    };
    // Paper 002's polynomial neural ODE, run under an implicit solver (see `solver_for`).
    let poly = examples::poly_ode(2, 3, 8, 20.0, 13);
    vec![
        ("poly-ode-f32", poly.clone(), Quant::F32),
        ("poly-ode-int8", poly, Quant::Int8),
        ("single-nn-f32", single.clone(), Quant::F32),
        ("single-nn-int8", single, Quant::Int8),
        ("dual-nn-f32", dual.clone(), Quant::F32),
        ("dual-nn-int8", dual, Quant::Int8),
        ("iterator-residual", iterator, Quant::F32),
        ("neural-ode", ode, Quant::F32),
    ]
}

/// The solver a golden runs under: Radau IIA 3 for the Π-net models, RK4 for the others.
fn solver_for(name: &str) -> Solver {
    if name.starts_with("poly") {
        Solver::Radau3
    } else {
        Solver::Rk4
    }
}

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct Expected {
    v: Vec<f32>,
    i: Vec<f32>,
    x_last: Vec<f32>,
}

fn stimulus() -> Vec<f32> {
    (0..SAMPLES)
        .map(|k| (2.0 * std::f32::consts::PI * 10.0 * k as f32 * DT).sin())
        .collect()
}

fn simulate(model: &Model<'_>, solver: Solver) -> Result<Expected, odeflash_runtime::SimError> {
    let cfg = SimConfig::new(DT, solver, 1);
    let mut scratch = vec![0.0f32; model.cost_for(&cfg).scratch_f32];
    let mut sim = Simulator::new(model, cfg, &mut scratch)?;
    let vs = stimulus();
    let n = model.n_states();
    let (mut v, mut i, mut x) = (
        vec![0.0; SAMPLES],
        vec![0.0; SAMPLES],
        vec![0.0; SAMPLES * n],
    );
    sim.run(&vs, &mut v, &mut i, &mut x)?;
    Ok(Expected {
        v,
        i,
        x_last: x[(SAMPLES - 1) * n..].to_vec(),
    })
}

#[test]
fn golden_files_have_exact_bytes_and_outputs() {
    for (name, spec, quant) in goldens() {
        let ofm = golden_dir().join(format!("{name}.ofm"));
        let json = golden_dir().join(format!("{name}.expected.json"));
        let bytes = spec.encode_bytes(quant);
        if bless() {
            std::fs::write(&ofm, &bytes).unwrap();
            let model = AlignedBlob::from_bytes(&bytes);
            let out = simulate(&model.model().unwrap(), solver_for(name)).unwrap();
            std::fs::write(&json, serde_json::to_string_pretty(&out).unwrap()).unwrap();
        }
        let stored = std::fs::read(&ofm).unwrap_or_else(|e| panic!("{}: {e}", ofm.display()));
        assert_eq!(
            bytes, stored,
            "{name}: the encoder no longer writes the golden bytes"
        );
        let blob = AlignedBlob::from_bytes(&stored);
        let model = blob.model().unwrap();
        assert_eq!(
            ModelSpec::from_model(&model).encode_bytes(quant),
            stored,
            "{name}"
        );
        let want: Expected =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        let got = simulate(&model, solver_for(name)).unwrap();
        let close = |a: &[f32], b: &[f32]| {
            a.len() == b.len()
                && a.iter()
                    .zip(b)
                    .all(|(x, y)| (x - y).abs() <= 1e-6 * y.abs().max(1e-6))
        };
        assert!(close(&got.v, &want.v), "{name}: v");
        assert!(close(&got.i, &want.i), "{name}: i");
        assert!(close(&got.x_last, &want.x_last), "{name}: x");
    }
}

#[test]
fn header_bytes_are_as_specified() {
    let stored = std::fs::read(golden_dir().join("single-nn-f32.ofm")).unwrap();
    assert_eq!(&stored[0..4], b"ODFM");
    assert_eq!(&stored[4..6], &[1, 0], "version 1, little-endian");
    assert_eq!(&stored[6..8], &[32, 0], "header length");
    let desc_len = u32::from_le_bytes(stored[8..12].try_into().unwrap()) as usize;
    let data_offset = u32::from_le_bytes(stored[12..16].try_into().unwrap()) as usize;
    let data_len = u32::from_le_bytes(stored[16..20].try_into().unwrap()) as usize;
    assert_eq!(data_offset, (32 + desc_len).div_ceil(16) * 16);
    assert_eq!(data_offset + data_len, stored.len());
    assert_eq!(&stored[20..28], &[0; 8], "flags and reserved");
    let crc = u32::from_le_bytes(stored[28..32].try_into().unwrap());
    let mut covered = stored[..28].to_vec();
    covered.extend_from_slice(&stored[32..]);
    assert_eq!(crc, crc32(&covered));
    // Descriptor starts with the name: varint length, then UTF-8.
    let name = b"single-nn-memode-2";
    assert_eq!(stored[32] as usize, name.len());
    assert_eq!(&stored[33..33 + name.len()], name);
}

fn fix_crc(b: &mut [u8]) {
    let mut covered = b[..28].to_vec();
    covered.extend_from_slice(&b[32..]);
    let c = crc32(&covered);
    b[28..32].copy_from_slice(&c.to_le_bytes());
}

/// Decodes and, if that succeeds, runs a few steps: neither may panic.
fn exercise(bytes: &[u8], solver: Solver) -> Result<(), DecodeError> {
    let blob = AlignedBlob::from_bytes(bytes);
    let model = Model::decode(blob.as_bytes())?;
    let dt = model.iterator_dt().unwrap_or(DT);
    let cfg = SimConfig::new(dt, solver, 1);
    let cost = model.cost_for(&cfg);
    assert!(cost.scratch_f32 < 1 << 20);
    let mut scratch = vec![0.0f32; cost.scratch_f32];
    if let Ok(mut sim) = Simulator::new(&model, cfg, &mut scratch) {
        for k in 0..8 {
            if sim.step(0.1 * k as f32, 0.1 * (k + 1) as f32).is_err() {
                break;
            }
        }
    }
    Ok(())
}

#[test]
fn every_truncation_is_an_error() {
    for (name, _, _) in goldens() {
        let stored = std::fs::read(golden_dir().join(format!("{name}.ofm"))).unwrap();
        for len in 0..stored.len() {
            let r = exercise(&stored[..len], solver_for(name));
            assert!(
                matches!(r, Err(DecodeError::Truncated { .. })),
                "{name} cut to {len} bytes: {r:?}"
            );
        }
        // Extra bytes after the blob (an erased flash region) are fine.
        let mut padded = stored.clone();
        padded.extend_from_slice(&[0xFF; 64]);
        exercise(&padded, solver_for(name)).unwrap();
    }
}

#[test]
fn every_single_byte_change_is_caught_or_valid() {
    for (name, _, _) in goldens() {
        let stored = std::fs::read(golden_dir().join(format!("{name}.ofm"))).unwrap();
        let data_offset = u32::from_le_bytes(stored[12..16].try_into().unwrap()) as usize;
        let (mut decoded_after_fixup, mut refused_after_fixup) = (0usize, 0usize);
        for pos in 0..stored.len() {
            // Every value in the header and descriptor, where the structure lives; every
            // single-bit flip in the tensor data, where any value is a structurally valid float.
            let values: Vec<u8> = if pos < data_offset {
                (0..=255u8).filter(|&v| v != stored[pos]).collect()
            } else {
                (0..8).map(|bit| stored[pos] ^ (1 << bit)).collect()
            };
            for value in values {
                let mut b = stored.clone();
                b[pos] = value;
                // As flashed: the checksum (or, for the checksum bytes themselves, the header
                // check) must refuse every single-byte change.
                assert!(
                    exercise(&b, solver_for(name)).is_err(),
                    "{name}: byte {pos} = {value:#04x} accepted"
                );
                // A hostile blob with a valid checksum reaches the structural checks: it may be
                // a valid model (a changed weight) or an error, never a panic.
                if !(28..32).contains(&pos) {
                    fix_crc(&mut b);
                    match exercise(&b, solver_for(name)) {
                        Ok(()) => decoded_after_fixup += 1,
                        Err(_) => refused_after_fixup += 1,
                    }
                }
            }
        }
        // Both outcomes must occur, or the corruption never reached the structural checks.
        assert!(decoded_after_fixup > 0 && refused_after_fixup > 0, "{name}");
    }
}

#[test]
fn unknown_version_and_kind_are_refused() {
    let stored = std::fs::read(golden_dir().join("neural-ode.ofm")).unwrap();
    let mut b = stored.clone();
    b[4] = 2;
    fix_crc(&mut b);
    assert_eq!(
        Model::decode(AlignedBlob::from_bytes(&b).as_bytes()),
        Err(DecodeError::UnsupportedVersion { found: 2 })
    );
    // The dynamics variant index follows the name and the state count; 7 is no known kind.
    let name_len = stored[32] as usize;
    let at = 33 + name_len + 1;
    let mut b = stored.clone();
    b[at] = 7;
    fix_crc(&mut b);
    assert_eq!(
        Model::decode(AlignedBlob::from_bytes(&b).as_bytes()),
        Err(DecodeError::Descriptor)
    );
}

#[test]
fn misaligned_blob_is_refused() {
    let stored = std::fs::read(golden_dir().join("neural-ode.ofm")).unwrap();
    // One byte in front: the blob now starts at an odd address inside aligned storage.
    let mut shifted = vec![0u8; stored.len() + 1];
    shifted[1..].copy_from_slice(&stored);
    let holder = AlignedBlob::from_bytes(&shifted);
    assert!(matches!(
        Model::decode(&holder.as_bytes()[1..]),
        Err(DecodeError::Misaligned { .. })
    ));
}
