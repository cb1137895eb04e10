//! Scoped services: a typed registry of singletons and scoped factories, and the [`Scope`] of
//! one unit of work.
//!
//! # Design
//!
//! - The [`Registry`] is built once ([`RegistryBuilder::build`], or
//!   [`HostBuilder::build`](crate::HostBuilder::build) for the host's own) and is immutable
//!   afterwards: resolving a service takes no lock. It is shared by every service thread
//!   through an `Arc`.
//! - A [`Scope`] belongs to the thread that created it (it is neither `Send` nor `Sync`): its
//!   values are created, used and dropped on that thread, so a scoped type needs no `Send`.
//!   Singletons are `Send + Sync` because every thread sees the same instance.
//! - A scope holds one `OnceCell` per registered scoped type. [`Scope::get`] fills the cell on
//!   first use and hands out `&T` borrowed from the scope: the borrow checker, not a runtime
//!   check, keeps a scoped value from outliving its scope. No `unsafe`.
//! - Values are dropped in reverse creation order when the scope is dropped — also while
//!   unwinding from a panic. A panicking `Drop` is caught and logged; the other values are
//!   still dropped.
//! - Re-entrancy: while a factory runs, its type is on the scope's resolution stack. A factory
//!   that asks, directly or through others, for a type still being created gets
//!   [`Error::DependencyCycle`] naming the chain — never a deadlock, a stack overflow or a
//!   half-built value. A factory's panic is caught and returned as [`Error::FactoryFailed`].

use std::any::{Any, TypeId, type_name};
use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;
use std::collections::hash_map::Entry as MapEntry;
use std::fmt;
use std::sync::Arc;

use crate::error::{BoxError, Error};
use crate::failure::Failure;

type ErasedFactory = Box<dyn Fn(&Scope<'_>) -> Result<Box<dyn Any>, BoxError> + Send + Sync>;

/// A scoped factory, type-erased.
struct Factory {
    type_name: &'static str,
    make: ErasedFactory,
}

/// What a type is registered as.
enum Entry {
    Singleton {
        value: Arc<dyn Any + Send + Sync>,
        type_name: &'static str,
    },
    /// Index into `Registry::factories` and into each scope's slots.
    Scoped(usize),
}

/// Collects singletons and scoped factories; [`build`](RegistryBuilder::build) checks them.
///
/// A [`HostBuilder`](crate::HostBuilder) has one inside
/// ([`HostBuilder::singleton`](crate::HostBuilder::singleton),
/// [`HostBuilder::scoped`](crate::HostBuilder::scoped)); use this type directly to test a
/// service's dependencies without a host.
///
/// ```
/// use std::sync::Arc;
/// use threadhost::Registry;
///
/// struct Config { greeting: String }
/// struct Greeter { line: String }
///
/// let registry = Registry::builder()
///     .singleton(Arc::new(Config { greeting: "hello".into() }))
///     .scoped(|scope| {
///         let config = scope.get::<Config>()?;
///         Ok(Greeter { line: format!("{}, world", config.greeting) })
///     })
///     .build()?;
/// let scope = registry.create_scope();
/// assert_eq!(scope.get::<Greeter>()?.line, "hello, world");
/// # Ok::<(), threadhost::Error>(())
/// ```
#[derive(Default)]
#[must_use = "a RegistryBuilder does nothing until `build` is called"]
pub struct RegistryBuilder {
    singletons: Vec<(TypeId, &'static str, Arc<dyn Any + Send + Sync>)>,
    factories: Vec<(TypeId, Factory)>,
}

impl RegistryBuilder {
    /// An empty builder.
    pub fn new() -> RegistryBuilder {
        RegistryBuilder::default()
    }

    /// Registers `value` as the one instance of `T`, shared by every scope and thread.
    /// [`Scope::get::<T>`](Scope::get) borrows it; [`Registry::singleton`] clones the `Arc`.
    pub fn singleton<T: Send + Sync + 'static>(mut self, value: Arc<T>) -> RegistryBuilder {
        self.singletons
            .push((TypeId::of::<T>(), type_name::<T>(), value));
        self
    }

    /// Registers a factory for `T`, called at most once per [`Scope`], on the scope's thread,
    /// the first time the scope is asked for a `T`. The factory may get other services
    /// (singletons and scoped) from the scope it is given.
    pub fn scoped<T, F>(mut self, factory: F) -> RegistryBuilder
    where
        T: 'static,
        F: Fn(&Scope<'_>) -> Result<T, BoxError> + Send + Sync + 'static,
    {
        let make: ErasedFactory =
            Box::new(move |scope| factory(scope).map(|value| Box::new(value) as Box<dyn Any>));
        self.factories.push((
            TypeId::of::<T>(),
            Factory {
                type_name: type_name::<T>(),
                make,
            },
        ));
        self
    }

    /// `true` if nothing was registered.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.singletons.is_empty() && self.factories.is_empty()
    }

    /// Checks the registrations and builds the registry.
    ///
    /// # Errors
    ///
    /// [`Error::DuplicateService`] naming the type, if a type was registered twice (as
    /// singletons, as scoped, or as both).
    pub fn build(self) -> Result<Registry, Error> {
        let mut entries = HashMap::with_capacity(self.singletons.len() + self.factories.len());
        let duplicate = |type_name: &str| Error::DuplicateService {
            service: Arc::from(type_name),
        };
        for (id, type_name, value) in self.singletons {
            match entries.entry(id) {
                MapEntry::Occupied(_) => return Err(duplicate(type_name)),
                MapEntry::Vacant(v) => {
                    v.insert(Entry::Singleton { value, type_name });
                }
            }
        }
        let mut factories = Vec::with_capacity(self.factories.len());
        for (id, factory) in self.factories {
            match entries.entry(id) {
                MapEntry::Occupied(_) => return Err(duplicate(factory.type_name)),
                MapEntry::Vacant(v) => {
                    v.insert(Entry::Scoped(factories.len()));
                    factories.push(factory);
                }
            }
        }
        Ok(Registry { entries, factories })
    }
}

impl fmt::Debug for RegistryBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryBuilder")
            .field(
                "singletons",
                &self.singletons.iter().map(|s| s.1).collect::<Vec<_>>(),
            )
            .field(
                "scoped",
                &self
                    .factories
                    .iter()
                    .map(|(_, f)| f.type_name)
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// The typed service registry: singletons and scoped factories, immutable once built.
///
/// Every service of a host reaches the host's registry through its [`Context`](crate::Context)
/// ([`create_scope`](crate::Context::create_scope), [`singleton`](crate::Context::singleton),
/// [`services`](crate::Context::services)).
///
/// # Thread safety
///
/// `Send + Sync`, and lock-free: it is never modified after [`RegistryBuilder::build`]. Each
/// [`Scope`] it creates stays on the thread that created it.
pub struct Registry {
    entries: HashMap<TypeId, Entry>,
    factories: Vec<Factory>,
}

impl Registry {
    /// A builder for a registry (also reachable as [`RegistryBuilder::new`]).
    pub fn builder() -> RegistryBuilder {
        RegistryBuilder::new()
    }

    /// An empty registry.
    #[must_use]
    pub fn empty() -> Registry {
        Registry {
            entries: HashMap::new(),
            factories: Vec::new(),
        }
    }

    /// A new scope for one unit of work. Cheap: one allocation for the scope's slots, no value
    /// created until asked for.
    #[must_use]
    pub fn create_scope(&self) -> Scope<'_> {
        Scope {
            registry: self,
            slots: self.factories.iter().map(|_| OnceCell::new()).collect(),
            created: RefCell::new(Vec::new()),
            resolving: RefCell::new(Vec::new()),
        }
    }

    /// The singleton registered for `T`.
    ///
    /// # Errors
    ///
    /// - [`Error::UnregisteredType`] if no `T` is registered.
    /// - [`Error::ScopedType`] if `T` is registered as scoped: get it from a [`Scope`].
    pub fn singleton<T: Send + Sync + 'static>(&self) -> Result<Arc<T>, Error> {
        match self.entries.get(&TypeId::of::<T>()) {
            Some(Entry::Singleton { value, .. }) => Arc::clone(value)
                .downcast::<T>()
                .map_err(|_| unregistered::<T>()),
            Some(Entry::Scoped(_)) => Err(Error::ScopedType {
                type_name: type_name::<T>(),
            }),
            None => Err(unregistered::<T>()),
        }
    }

    /// `true` if `T` is registered, as a singleton or as scoped.
    #[must_use]
    pub fn contains<T: 'static>(&self) -> bool {
        self.entries.contains_key(&TypeId::of::<T>())
    }
}

impl Default for Registry {
    fn default() -> Registry {
        Registry::empty()
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let singletons: Vec<&str> = self
            .entries
            .values()
            .filter_map(|e| match e {
                Entry::Singleton { type_name, .. } => Some(*type_name),
                Entry::Scoped(_) => None,
            })
            .collect();
        let scoped: Vec<&str> = self.factories.iter().map(|f| f.type_name).collect();
        f.debug_struct("Registry")
            .field("singletons", &singletons)
            .field("scoped", &scoped)
            .finish()
    }
}

fn unregistered<T>() -> Error {
    Error::UnregisteredType {
        type_name: type_name::<T>(),
    }
}

/// One unit of work's services: each scoped value is created on first use, is the same
/// instance for the rest of the scope, and is dropped — in reverse creation order — when the
/// scope is dropped, also when a panic unwinds through it. The next scope creates new ones.
///
/// Made by [`Context::create_scope`](crate::Context::create_scope) (or
/// [`Registry::create_scope`]); the .NET equivalent is `IServiceScopeFactory.CreateScope()`.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use threadhost::Registry;
///
/// static NEXT_ID: AtomicUsize = AtomicUsize::new(0);
/// struct UnitOfWork { id: usize }
///
/// let registry = Registry::builder()
///     .scoped(|_| Ok(UnitOfWork { id: NEXT_ID.fetch_add(1, Ordering::Relaxed) }))
///     .build()?;
/// let first = {
///     let scope = registry.create_scope();
///     let a = scope.get::<UnitOfWork>()?.id;
///     assert_eq!(scope.get::<UnitOfWork>()?.id, a); // same instance within the scope
///     a
/// }; // dropped here
/// let scope = registry.create_scope();
/// assert_ne!(scope.get::<UnitOfWork>()?.id, first); // a new one in the next scope
/// # Ok::<(), threadhost::Error>(())
/// ```
///
/// A scoped value cannot outlive its scope; the borrow checker refuses it:
///
/// ```compile_fail,E0597
/// use threadhost::Registry;
///
/// struct Connection;
/// let registry = Registry::builder().scoped(|_| Ok(Connection)).build()?;
/// let leaked: &Connection = {
///     let scope = registry.create_scope();
///     scope.get::<Connection>()? // error: `scope` does not live long enough
/// };
/// # let _ = leaked;
/// # Ok::<(), threadhost::Error>(())
/// ```
///
/// # Re-entrancy and cycles
///
/// A factory may call [`get`](Scope::get) on the scope it is given, for singletons and other
/// scoped types. While a factory runs, its type is marked as being created in this scope; a
/// `get` for a type being created — the factory asking for its own type, or `A` needing `B`
/// needing `A` — returns [`Error::DependencyCycle`] naming the chain (`A -> B -> A`) at once:
/// never a deadlock, a stack overflow or a half-built value. Nothing is stored for a type
/// whose factory failed, and the scope stays usable.
///
/// # Drop order and panics
///
/// Values are dropped in reverse creation order, so a value is dropped before the values its
/// factory got from the scope. A panic unwinding through the unit of work drops the scope,
/// and with it every value. A value whose `Drop` panics is logged; the others are still
/// dropped.
///
/// # Thread safety
///
/// A scope is used on the thread that created it: it is neither `Send` nor `Sync`, so it
/// cannot be handed to another thread:
///
/// ```compile_fail,E0277
/// use threadhost::Registry;
///
/// let registry = Registry::empty();
/// let scope = registry.create_scope();
/// std::thread::scope(|s| {
///     s.spawn(|| drop(scope)); // error: `Scope` cannot be sent between threads safely
/// });
/// ```
pub struct Scope<'r> {
    registry: &'r Registry,
    /// One cell per scoped factory (`Entry::Scoped(i)` ↔ `slots[i]`).
    slots: Box<[OnceCell<Box<dyn Any>>]>,
    /// Indices of the filled slots, in creation order (dropped in reverse).
    created: RefCell<Vec<usize>>,
    /// The factories running now, outermost first: the cycle detector.
    resolving: RefCell<Vec<usize>>,
}

impl Scope<'_> {
    /// The `T` of this scope: a singleton, or the scoped instance — created by its factory on
    /// first use, the same instance afterwards. The reference borrows the scope, so it cannot
    /// outlive it.
    ///
    /// # Errors
    ///
    /// - [`Error::UnregisteredType`] naming `T` if nothing is registered for it.
    /// - [`Error::DependencyCycle`] naming the types, if `T` is being created already (its
    ///   factory, directly or through other factories, asked for `T`).
    /// - [`Error::FactoryFailed`] naming the type whose factory returned an error or panicked.
    ///   An error that a factory passes on from a nested `get` (`scope.get::<U>()?`) is
    ///   returned as it is, so it still names the type at fault.
    ///
    /// After an error the scope stays usable; nothing was stored for `T`.
    pub fn get<T: 'static>(&self) -> Result<&T, Error> {
        match self.registry.entries.get(&TypeId::of::<T>()) {
            None => Err(unregistered::<T>()),
            Some(Entry::Singleton { value, .. }) => {
                value.downcast_ref::<T>().ok_or_else(unregistered::<T>)
            }
            Some(&Entry::Scoped(i)) => {
                if self.slots[i].get().is_none() {
                    self.create(i)?;
                }
                self.slots[i]
                    .get()
                    .and_then(|value| value.downcast_ref::<T>())
                    .ok_or_else(unregistered::<T>)
            }
        }
    }

    /// The singleton registered for `T`, as an `Arc` that may outlive the scope.
    ///
    /// # Errors
    ///
    /// As [`Registry::singleton`].
    pub fn singleton<T: Send + Sync + 'static>(&self) -> Result<Arc<T>, Error> {
        self.registry.singleton::<T>()
    }

    /// How many scoped values this scope has created so far.
    #[must_use]
    pub fn len(&self) -> usize {
        self.created.borrow().len()
    }

    /// `true` if this scope has created no value yet.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Runs the factory of slot `i` and stores its value. Not generic, to keep `get` small.
    fn create(&self, i: usize) -> Result<(), Error> {
        let factory = &self.registry.factories[i];
        {
            let mut resolving = self.resolving.borrow_mut();
            if let Some(pos) = resolving.iter().position(|&r| r == i) {
                let mut services: Vec<Arc<str>> = resolving[pos..]
                    .iter()
                    .map(|&r| Arc::from(self.registry.factories[r].type_name))
                    .collect();
                services.push(Arc::from(factory.type_name));
                return Err(Error::DependencyCycle { services });
            }
            resolving.push(i);
        }
        // Popped however the factory ends (an error, or a panic caught below).
        let _pop = scopeguard::guard((), |()| {
            self.resolving.borrow_mut().pop();
        });
        // The factory is user code: a panic becomes an error, as everywhere in threadhost.
        // No `RefCell` borrow is held across it (it may re-enter `get`).
        let value = match crate::panic::catch(|| (factory.make)(self)) {
            Ok(Ok(value)) => value,
            Ok(Err(error)) => {
                return Err(match error.downcast::<Error>() {
                    Ok(nested) => *nested,
                    Err(error) => Error::FactoryFailed {
                        type_name: factory.type_name,
                        failure: Failure::from_box(error),
                    },
                });
            }
            Err(message) => {
                return Err(Error::FactoryFailed {
                    type_name: factory.type_name,
                    failure: Failure::Panic(message.into()),
                });
            }
        };
        // The slot is still empty: only this call, on the resolving stack, could fill it.
        if self.slots[i].set(value).is_ok() {
            self.created.borrow_mut().push(i);
        }
        Ok(())
    }
}

impl Drop for Scope<'_> {
    fn drop(&mut self) {
        let created = std::mem::take(self.created.get_mut());
        for &i in created.iter().rev() {
            let Some(value) = self.slots[i].take() else {
                continue;
            };
            // A value's `Drop` is user code: a panic in one must not leak the others.
            let type_name = self.registry.factories[i].type_name;
            crate::panic::log_panic(format_args!("dropping scoped `{type_name}`"), move || {
                drop(value);
            });
        }
    }
}

impl fmt::Debug for Scope<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let created: Vec<&str> = self
            .created
            .borrow()
            .iter()
            .map(|&i| self.registry.factories[i].type_name)
            .collect();
        f.debug_struct("Scope")
            .field("created", &created)
            .finish_non_exhaustive()
    }
}
