//! Proof that the object-store emulators behave as Baton relies on, through object_store 0.14:
//! every fact in the testing notes on emulators is asserted here.

mod basics;
mod create_if_absent;
mod helpers;
mod multipart;
mod restart;
mod signed_urls;
mod timeouts;
