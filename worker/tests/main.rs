//! Integration tests of the worker runtime's pieces that need no RabbitMQ: the cache of
//! object-stored inputs, fetched from a local HTTP server standing in for signed URLs.

mod cache_bound;
mod cache_fetch;
mod helpers;
