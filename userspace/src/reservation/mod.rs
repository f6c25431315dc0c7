//! Reservations as every entry path shares them: the rule that accepts one.

pub mod rule;

#[cfg(test)]
mod tests;
