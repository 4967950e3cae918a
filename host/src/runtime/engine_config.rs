//! The wasmtime configuration compiled engines are made for. One function,
//! used by the runtime and by `build.rs` (which precompiles the component
//! into the binary), so an artifact made at build time is one the runtime
//! accepts: wasmtime refuses an artifact made under another configuration.

/// `baseline`: Winch, the quick compiler, for a start with no optimized
/// artifact at hand; otherwise Cranelift's optimized code.
pub fn config(baseline: bool) -> wasmtime::Config {
    let mut config = wasmtime::Config::new();
    config.consume_fuel(true);
    if baseline {
        // Winch compiles the functions; the trampolines it leaves to
        // Cranelift are compiled the quick way too (-25% on this component).
        config
            .strategy(wasmtime::Strategy::Winch)
            .cranelift_opt_level(wasmtime::OptLevel::None)
            .cranelift_regalloc_algorithm(wasmtime::RegallocAlgorithm::SinglePass);
    }
    config
}
