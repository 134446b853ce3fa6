//! The registry: **the one list of domains that plug in through [`Domain`]** (their snapshot
//! section, capture, restore, canonical order, self-check and pruning).
//!
//! Registering a domain is one line in [`registered_domains!`]; `snapshot.rs` takes its
//! section into [`crate::snapshot::Image`] from the same list. The catalog, stock and flash
//! domains are wired by hand (`engine/mod.rs` `capture`/`restore`): their capture needs the
//! shard guards and their restore depends on each other (claims name their sale, cells their
//! location id), which no generic step can order for them.

use crate::kernel::domain::Domain;
use crate::time::Timestamp;

/// Calls `$then!` with the registered domains as `field: Domain => Section,` — one line each.
macro_rules! registered_domains {
    ($then:ident) => {
        $then! {
            transfers: crate::transfer::Transfers => crate::transfer::snapshot::TransferSection,
        }
    };
}
pub(crate) use registered_domains;

macro_rules! domain_set {
    ($($field:ident: $domain:ty => $section:ty,)*) => {
        /// Every registered domain's state.
        #[derive(Debug, Default)]
        pub(crate) struct Domains {
            $(pub $field: $domain,)*
        }

        /// Their copies, taken under the engine's locks.
        pub(crate) struct DomainCaptures {
            $(pub $field: <$domain as Domain>::Capture,)*
        }

        // Compiles only if each section named is its domain's own `Domain::Section`.
        $(const _: fn(&$domain) -> Option<&$section> = |_| None::<&<$domain as Domain>::Section>;)*

        impl Domains {
            pub fn capture(&self) -> DomainCaptures {
                DomainCaptures { $($field: self.$field.capture(),)* }
            }

            pub fn check(&self) -> Result<(), String> {
                $(self.$field.check().map_err(|e| format!("{}: {e}", stringify!($field)))?;)*
                Ok(())
            }

            pub fn prunable(&self, now: Timestamp) -> bool {
                false $(|| self.$field.prunable(now))*
            }

            /// Prunes every domain as of `at`; returns how many entries went.
            pub fn prune(&self, at: Timestamp) -> u64 {
                0 $(+ self.$field.prune(at))*
            }
        }
    };
}

registered_domains!(domain_set);
