//! Where the models run. One trait, [`Backend`]: the CPU (tract's own
//! kernels) always, CUDA through tract's GPU runtime with the `cuda` feature.
//! No stage knows which one it got; the LLM only asks whether it may use
//! emoedge's own CPU kernels ([`Backend::runs_on_host`]).
//!
//! [`select`] turns `--device auto|cpu|cuda` into a backend and says why:
//! CUDA needs the feature compiled in, a driver, the CUDA runtime libraries
//! tract-cuda loads at run time (cudart, nvrtc, cuBLAS, cuDNN) and a device.
//! When any is missing the choice falls back to the CPU with the reason in
//! the log, never a panic or a loader error.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::runtime::{Runnable, Runtime};

mod depthwise;
mod op;
mod pointwise;
mod pool;
mod rewrite;
mod separable;
mod stem;
mod summed;
pub use rewrite::ChannelPrelu;
pub use separable::{Activation, ResidualSeparableConv};

/// Where a model runs.
pub trait Backend: Send + Sync {
    fn name(&self) -> &'static str;
    fn prepare(&self, model: TypedModel) -> TractResult<Box<dyn Runnable>>;
    /// Whether models run in this process's memory on the CPU: emoedge's own
    /// ops (the LLM's kernels over memory-mapped weights) run only there.
    fn runs_on_host(&self) -> bool;
}

/// tract's own optimiser and kernels on the host CPU.
pub struct Cpu;

/// Whether this CPU does half-precision arithmetic natively (ARMv8.2 FP16).
/// Where it does not (x86_64), tract would emulate every f16 operation:
/// hundreds of times slower, and accumulating in f16 besides.
pub fn native_f16() -> bool {
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("fp16")
    }
    #[cfg(not(target_arch = "aarch64"))]
    {
        false
    }
}

impl Backend for Cpu {
    fn name(&self) -> &'static str {
        "cpu"
    }
    fn runs_on_host(&self) -> bool {
        true
    }
    fn prepare(&self, mut model: TypedModel) -> TractResult<Box<dyn Runnable>> {
        // An fp16 export then keeps its half-size file and f16-rounded weights,
        // and computes in f32.
        if !native_f16() {
            if let Some(widen) = tract_onnx::tract_core::transform::get_transform("f16_to_f32")? {
                model.transform(&*widen)?;
            }
        }
        tract_onnx::tract_core::runtime::DefaultRuntime.prepare(cpu_passes(model)?)
    }
}

/// What the CPU backend does to a model before tract optimises it: tract's
/// declutter, then emoedge's own rewrites ([`rewrite`]), which match the
/// decluttered graph. Public so that benchmarks can time a model with and
/// without them.
pub fn cpu_passes(model: TypedModel) -> TractResult<TypedModel> {
    let mut model = model.into_decluttered()?;
    rewrite::apply(&mut model)?;
    Ok(model)
}

/// An NVIDIA GPU through tract-cuda. Only [`select`] makes one, after the
/// driver, libraries and device have been found.
#[cfg(feature = "cuda")]
pub struct Cuda(&'static dyn Runtime);

#[cfg(feature = "cuda")]
impl Backend for Cuda {
    fn name(&self) -> &'static str {
        "cuda"
    }
    fn runs_on_host(&self) -> bool {
        false
    }
    fn prepare(&self, model: TypedModel) -> TractResult<Box<dyn Runnable>> {
        // tract-cuda's translation matches decluttered ops (EinSum as matrix
        // products, RmsNorm then its gain); the CPU runtime declutters on its own.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.0.prepare(model.into_decluttered()?)))
            .unwrap_or_else(|_| Err(anyhow::anyhow!("tract-cuda panicked while preparing the model")))
    }
}

/// `--device`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Device {
    /// CUDA when it is compiled in and works here, else the CPU.
    #[default]
    Auto,
    Cpu,
    Cuda,
}

/// The chosen backend, and why it was chosen.
pub struct Selected {
    pub backend: Box<dyn Backend>,
    pub why: String,
}

/// Whether CUDA can run here: `Err` says what is missing.
pub fn cuda_available() -> Result<(), String> {
    #[cfg(feature = "cuda")]
    {
        // tract-cuda's own probe: driver version, then each runtime library
        // dlopen'd. It returns errors; the context creation after it would panic.
        tract_cuda::utils::ensure_cuda_runtime_dependencies("CUDA is not usable").map_err(|e| format!("{e:#}"))?;
        match tract_onnx::tract_core::runtime::runtime_for_name("cuda") {
            Ok(Some(rt)) => rt.check().map_err(|e| format!("{e:#}")),
            Ok(None) => Err("tract's cuda runtime is not registered".into()),
            Err(e) => Err(format!("{e:#}")),
        }
    }
    #[cfg(not(feature = "cuda"))]
    {
        Err("this emoedge was built without the `cuda` feature (cargo build --features cuda)".into())
    }
}

/// Picks the backend for `device`. CUDA that is asked for but cannot run
/// falls back to the CPU too, saying why at warn level.
pub fn select(device: Device) -> Selected {
    let cpu = |why: String| Selected { backend: Box::new(Cpu), why };
    match device {
        Device::Cpu => cpu("--device cpu".into()),
        Device::Auto | Device::Cuda => match cuda_available() {
            Ok(()) => cuda_backend().unwrap_or_else(|e| {
                let why = format!("CUDA was found but its runtime could not be set up ({e}); using the CPU");
                log::warn!("{why}");
                cpu(why)
            }),
            Err(missing) => {
                let why = format!("no CUDA: {missing}; using the CPU");
                if device == Device::Cuda {
                    log::warn!("--device cuda: {why}");
                } else {
                    log::info!("--device auto: {why}");
                }
                cpu(why)
            }
        },
    }
}

#[cfg(feature = "cuda")]
fn cuda_backend() -> Result<Selected, String> {
    // Probed once per process: the face models and the LLM each select.
    static PROBED: std::sync::OnceLock<Result<&'static dyn Runtime, String>> = std::sync::OnceLock::new();
    let rt = PROBED.get_or_init(probe_cuda).clone()?;
    Ok(Selected { backend: Box::new(Cuda(rt)), why: "CUDA: driver, libraries and a device found".into() })
}

/// tract's cuda runtime, once a one-op model has gone through the whole path
/// (context, upload, kernel, download): tract-cuda panics where it cannot
/// create its context, so this is where that is caught, before any real
/// model depends on it.
#[cfg(feature = "cuda")]
fn probe_cuda() -> Result<&'static dyn Runtime, String> {
    let rt = tract_onnx::tract_core::runtime::runtime_for_name("cuda")
        .map_err(|e| format!("{e:#}"))?
        .ok_or("tract's cuda runtime is not registered")?;
    let probe = || -> TractResult<f32> {
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact([4]))?;
        let one = model.add_const("one", tensor1(&[1f32; 4]))?;
        let y = model.wire_node("y", tract_onnx::tract_core::ops::math::add(), &[x, one])?;
        model.select_output_outlets(&y)?;
        let plan = Cuda(rt).prepare(model)?;
        let out = plan.run(tvec!(tensor1(&[1f32, 2.0, 3.0, 4.0]).into_tvalue()))?;
        Ok(out[0].to_plain_array_view::<f32>()?.iter().sum())
    };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(probe)) {
        Ok(Ok(sum)) if (sum - 14.0).abs() < 1e-4 => Ok(rt),
        Ok(Ok(sum)) => Err(format!("a test model gave {sum} on the GPU, not 14")),
        Ok(Err(e)) => Err(format!("a test model failed on the GPU: {e:#}")),
        Err(_) => Err("creating the CUDA context failed (tract-cuda panicked)".into()),
    }
}

#[cfg(not(feature = "cuda"))]
fn cuda_backend() -> Result<Selected, String> {
    Err("built without the `cuda` feature".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_cuda_here_falls_back_to_the_cpu_with_a_reason() {
        // This machine has no GPU (and CI builds both with and without the feature).
        if cuda_available().is_ok() {
            return;
        }
        for device in [Device::Auto, Device::Cuda] {
            let s = select(device);
            assert_eq!(s.backend.name(), "cpu");
            assert!(s.why.starts_with("no CUDA: ") && s.why.len() > 20, "{}", s.why);
        }
        assert_eq!(select(Device::Cpu).backend.name(), "cpu");
    }
}
