pub mod cranelift;
