//! Memristor rig on a NUCLEO-F446RE (see README for the circuit): DAC1 (PA4) drives the supply
//! through the series resistor, ADC1 (PA0) samples the memristor voltage at `SAMPLE_RATE_HZ`,
//! started by TIM2's update event (TRGO, no software in the sampling instant). For every sample
//! the measured current `(v_s - v_m) / R_s` is compared with the surrogate's, stepped one sample
//! on the same drive, and the residual is logged over RTT (`r k v_s v_m i_meas residual`).
//!
//! The model is read from its own flash region (sector 7, 0x0806_0000, see `memory.x`), decoded
//! and CRC-checked at boot: a missing or corrupted model is reported and never run.
#![no_std]
#![no_main]

use core::ptr::{addr_of, addr_of_mut};

use cortex_m_rt::entry;
use defmt::{error, info, warn};
use defmt_rtt as _;
use odeflash_runtime::{activation::sin, Model, SimConfig, Simulator, Solver};
use panic_probe as _;
use stm32f4xx_hal::{
    adc::{
        config::{AdcConfig, Eoc, ExternalTrigger, SampleTime, Sequence, TriggerMode},
        Adc,
    },
    dac::{DacExt, DacOut, DacPin},
    pac,
    prelude::*,
    rcc::Config,
};

const SAMPLE_RATE_HZ: u32 = 1_000;
/// Drive: `AMPLITUDE * sin(2 pi FREQUENCY t)` around the mid-rail reference.
const AMPLITUDE: f32 = 1.0;
const FREQUENCY: f32 = 2.0;
/// The memristor's return terminal sits on a buffered mid-rail reference, so the 0..3.3 V DAC
/// gives a bipolar drive of up to ±1.65 V.
const V_MID: f32 = 1.65;
const V_REF: f32 = 3.3;
/// Log every n-th sample (RTT keeps up with about 2 kHz of these lines).
const LOG_EVERY: u32 = 1;
/// Used when the model has no series resistor of its own.
const DEFAULT_R_SERIES: f32 = 1_000.0;

static mut SCRATCH: [f32; 4096] = [0.0; 4096];

#[repr(C, align(16))]
struct Aligned<T>(T);

/// The model given by `ODEFLASH_MODEL` at build time, if any, placed in the MODEL sector.
#[link_section = ".model"]
#[used]
static LINKED_MODEL: Aligned<[u8; MODEL_LEN]> =
    Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/model.ofm")));
const MODEL_LEN: usize = parse_len(env!("ODEFLASH_MODEL_LEN"));

const fn parse_len(s: &str) -> usize {
    let (b, mut i, mut n) = (s.as_bytes(), 0, 0);
    while i < b.len() {
        n = n * 10 + (b[i] - b'0') as usize;
        i += 1;
    }
    n
}

extern "C" {
    static _model_start: u8;
    static _model_end: u8;
}

fn model_region() -> &'static [u8] {
    // SAFETY: the linker symbols bound the MODEL flash sector, which is mapped and only read.
    unsafe {
        let start = addr_of!(_model_start);
        let len = addr_of!(_model_end) as usize - start as usize;
        core::slice::from_raw_parts(start, len)
    }
}

fn dac_code(v_s: f32) -> u16 {
    (((v_s + V_MID) / V_REF) * 4095.0 + 0.5).clamp(0.0, 4095.0) as u16
}

fn adc_volts(code: u16) -> f32 {
    code as f32 * (V_REF / 4095.0) - V_MID
}

#[entry]
#[allow(clippy::modulo_one)] // LOG_EVERY may be 1
fn main() -> ! {
    let dp = pac::Peripherals::take().unwrap();
    // 8 MHz from the ST-LINK's MCO, 180 MHz core.
    let mut rcc = dp.RCC.freeze(
        Config::hse(8.MHz())
            .bypass_hse_oscillator()
            .sysclk(180.MHz()),
    );

    let model = match Model::decode(model_region()) {
        Ok(m) => m,
        Err(e) => {
            error!(
                "no usable model at 0x0806_0000: {} (flash one, see README)",
                e
            );
            loop {
                cortex_m::asm::wfi();
            }
        }
    };
    let r_series = model
        .circuit
        .map_or(DEFAULT_R_SERIES, |c| c.series_resistance);
    let dt = 1.0 / SAMPLE_RATE_HZ as f32;
    let cost = model.cost(Solver::Rk4, 1);
    info!(
        "model {=str} ({=str}), {=u32} MAC/step, R_s {=f32} ohm, {=u32} Hz",
        model.name,
        model.kind().as_str(),
        cost.macs_per_step,
        r_series,
        SAMPLE_RATE_HZ
    );
    let config = SimConfig {
        dt,
        solver: Solver::Rk4,
        substeps: 1, newton_iters: SimConfig::DEFAULT_NEWTON_ITERS,
    };
    // SAFETY: the only reference to SCRATCH.
    let scratch = unsafe { &mut *addr_of_mut!(SCRATCH) };
    let mut sim = match Simulator::new(&model, config, scratch) {
        Ok(s) => s,
        Err(e) => {
            error!("simulator: {}", e);
            loop {
                cortex_m::asm::wfi();
            }
        }
    };

    let gpioa = dp.GPIOA.split(&mut rcc);
    let mut dac = dp.DAC.constrain(gpioa.pa4.into_analog(), &mut rcc);
    dac.enable();
    dac.set_value(dac_code(0.0));

    // ADC1 channel 0 (PA0), one conversion per rising TIM2 TRGO; EOC per conversion also makes
    // the ADC flag an overrun when a sample is not read before the next one.
    let pa0 = gpioa.pa0.into_analog();
    let adc_config = AdcConfig::default()
        .external_trigger(TriggerMode::RisingEdge, ExternalTrigger::Tim_2_trgo)
        .end_of_conversion_interrupt(Eoc::Conversion);
    let mut adc = Adc::new(dp.ADC1, true, adc_config, &mut rcc);
    adc.configure_channel(&pa0, Sequence::One, SampleTime::Cycles_84);
    // Only the flag is used; the interrupt itself stays masked in the NVIC.

    let mut timer = dp.TIM2.counter_hz(&mut rcc);
    // SAFETY: TIM2 is owned by `timer`; this only selects its update event as trigger output.
    unsafe { (*pac::TIM2::ptr()).cr2().modify(|_, w| w.mms().update()) };
    timer.start(SAMPLE_RATE_HZ.Hz()).unwrap();

    let adc1 = unsafe { &*pac::ADC1::ptr() };
    let phase_step = FREQUENCY / SAMPLE_RATE_HZ as f32;
    let (mut phase, mut v_s, mut k) = (0.0f32, 0.0f32, 0u32);
    loop {
        // The conversion TIM2 started at this sample instant.
        while adc1.sr().read().eoc().bit_is_clear() {}
        if adc1.sr().read().ovr().bit_is_set() {
            warn!(
                "sample {=u32}: overrun, the step takes longer than a sample interval",
                k
            );
            adc1.sr().modify(|_, w| w.ovr().clear_bit());
        }
        let v_m = adc_volts(adc.current_sample());
        // Drive the next interval before computing (zero-order hold: v_s held until then).
        let v_held = v_s;
        phase += phase_step;
        if phase >= 1.0 {
            phase -= 1.0;
        }
        v_s = AMPLITUDE * sin(core::f32::consts::TAU * phase);
        dac.set_value(dac_code(v_s));

        // v_m was measured at the end of an interval with `v_held` applied throughout.
        let i_meas = (v_held - v_m) / r_series;
        let predicted = if k == 0 {
            sim.observe(v_held)
        } else {
            sim.step(v_held, v_held)
        };
        match predicted {
            Ok(p) if k % LOG_EVERY == 0 => info!(
                "r {=u32} {=f32} {=f32} {=f32} {=f32}",
                k,
                v_held,
                v_m,
                i_meas,
                i_meas - p.i
            ),
            Ok(_) => {}
            Err(e) => {
                error!(
                    "sample {=u32}: {}; restarting from the model's initial state",
                    k, e
                );
                let _ = sim.reset(None);
            }
        }
        k = k.wrapping_add(1);
    }
}
