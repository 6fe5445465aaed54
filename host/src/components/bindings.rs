//! The one `bindgen!` over `wit/`: Rust types for the `turf-component` world.
//!
//! Imports and exports are async so host functions can await other actors and guest calls yield
//! to the runtime on every epoch tick. Nothing else in the crate invokes `bindgen!`.

#![allow(missing_docs)]

wasmtime::component::bindgen!({
    path: "../wit",
    world: "turf-component",
    imports: { default: async },
    exports: { default: async },
});
