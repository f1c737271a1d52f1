pub mod cranelift;
pub mod ptx;
