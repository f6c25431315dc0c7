//! Reservations as every entry path shares them: the rule that accepts one
//! and the book that holds them.

pub mod book;
pub mod rule;

#[cfg(test)]
mod tests;
