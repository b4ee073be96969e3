//! The [`Hub`] handle and the state its tasks share.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::callbacks::{CallbackEvent, start_dispatcher};
use super::config::HubConfig;
use super::errors::HubError;
use super::metrics::{HubMetrics, MetricsSnapshot};
use super::pairing_config::RequestPairing;
use super::runtime::address_book::{DEFAULT_SHIP_PATH, check_dialable};
use super::runtime::admission::Admission;
use super::runtime::handover::Command;
use super::runtime::listener::accept_loop;
use super::runtime::pairing_agent;
use super::runtime::pairings::Pairings;
use super::runtime::pin_guard::PinGuard;
use super::runtime::shared::ServiceState;
use super::runtime::shared::{ConnectionInfo, PeerStatus, Shared};
use super::runtime::sightings;
use super::runtime::supervisor::route;
use super::trust::PairedPeer;
use crate::protocol::{ConnectionState, Pin};
use crate::sync::lock;
use crate::transport::ShipTls;
use crate::{ShipId, Ski};

/// What [`Hub::shutdown`] did, phase by phase (docs/ship.md §10).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Phase 1: the listener stopped accepting.
    pub listener_stopped: bool,
    /// Phase 2: the mDNS announcement was withdrawn (false without a discovery).
    pub announcement_withdrawn: bool,
    /// Phase 3: dials and reconnect timers cancelled (number of peers that had one).
    pub peers_stopped: usize,
    /// Phase 4: every connection ended within the deadline (with its SHIP close).
    pub connections_closed_in_time: bool,
    /// Tasks still running at the deadline and aborted (0 in a clean shutdown).
    pub tasks_aborted: usize,
    /// The callback dispatcher delivered every queued call and ended.
    pub callbacks_finished: bool,
    /// How long the whole shutdown took.
    pub elapsed: Duration,
}

/// A running SHIP hub: listens, dials paired peers, and keeps them connected.
///
/// Cheap to clone; every clone controls the same hub. All methods except [`Hub::start`] and
/// [`Hub::shutdown`] are synchronous and never wait for a peer or for a callback, so they may be
/// called from inside [`super::Callbacks`] methods.
#[derive(Clone)]
pub struct Hub {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    callbacks_done: Arc<Mutex<Option<oneshot::Receiver<()>>>>,
    _last_handle: Arc<StopOnDrop>,
}

/// Stops the hub abruptly when the last [`Hub`] handle is dropped without
/// [`Hub::shutdown`]: the listener closes, dials stop, connections are dropped without a SHIP
/// close, and the tasks end on their own. (The tasks hold the shared state, so without this a
/// forgotten hub would run forever.)
struct StopOnDrop {
    shared: Arc<Shared>,
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if !self.shared.abort.is_cancelled() {
            tracing::debug!(ski = %self.shared.local_ski, "last Hub handle dropped: stopping");
        }
        self.shared.stop_accepting.cancel();
        self.shared.stop.cancel();
        self.shared.abort.cancel();
        self.shared.callbacks.push(CallbackEvent::Stop);
    }
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("ski", &self.shared.local_ski)
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl Hub {
    /// Binds the listener and starts the hub; paired peers with a known address are dialled.
    ///
    /// All or nothing: every step that can fail (loading the pairings, TLS, binding, the first
    /// announcement) runs before anything is spawned, so a start that fails leaves no listening
    /// socket and no task behind.
    pub async fn start(config: HubConfig) -> Result<Hub, HubError> {
        Ok(Hub::launch(config, false).await?.0)
    }

    /// [`Hub::start`], with an event stream ([`Hub::events`]) subscribed before anything is
    /// spawned: it sees every event of the hub's life, including those of the peers dialled,
    /// the connections accepted and the services seen before `start` returns (a stream from
    /// [`Hub::events`] called after `start` may miss those). For an application whose one
    /// view of the hub is its event stream.
    pub async fn start_with_events(
        config: HubConfig,
    ) -> Result<(Hub, super::callbacks::HubEvents), HubError> {
        let (hub, events) = Hub::launch(config, true).await?;
        let events = events.unwrap_or_else(|| hub.events());
        Ok((hub, events))
    }

    /// Starts the hub; with `subscribe`, also an event stream that sees everything from the
    /// start.
    async fn launch(
        config: HubConfig,
        subscribe: bool,
    ) -> Result<(Hub, Option<super::callbacks::HubEvents>), HubError> {
        let local_ski = config.identity.ski();
        let mut service = pairing_agent::prepare(&config, local_ski)?;
        let pairing_requests = service.take_requests();
        let paired = config.trust_store.load_all()?;
        let tls = ShipTls::new(&config.identity, config.tls.clone()).map_err(HubError::Tls)?;
        let listener = config
            .network
            .bind(config.bind)
            .await
            .map_err(|source| HubError::Bind {
                addr: config.bind,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| HubError::Bind {
            addr: config.bind,
            source,
        })?;
        if let Some(discovery) = &config.discovery {
            // On failure the listener is dropped here: the port is free again.
            discovery
                .announce(sightings::announcement_of(
                    &config,
                    local_ski,
                    config.auto_accept,
                    local_addr.port(),
                ))
                .map_err(HubError::Discovery)?;
        }
        // Nothing below fails.
        let (callbacks, callbacks_done) = start_dispatcher(
            config.callbacks.clone(),
            config.limits.max_inbound_bytes_total,
            config.limits.max_queued_events,
        );
        // Queued before any task that reports can run: the stream misses nothing.
        let events = subscribe.then(|| callbacks.subscribe());
        let seed = config.rng_seed.unwrap_or_else(rand::random);
        let (trust_writes, trust_queue) = mpsc::unbounded_channel();
        let shared = Arc::new_cyclic(|weak: &Weak<Shared>| {
            let observer_target = weak.clone();
            let tls = tls.with_client_certificate_observer(Arc::new(move |ski: Ski| {
                if let Some(shared) = observer_target.upgrade() {
                    let _ = shared.route_existing(ski, Command::ClientCertificateSeen);
                }
            }));
            Shared {
                local_ski,
                tls,
                registry: Mutex::new(HashMap::new()),
                pairings: Pairings::new(paired.clone(), trust_writes),
                callbacks,
                connections: Arc::new(Semaphore::new(config.limits.max_connections)),
                admission: Admission::new(&config.limits),
                metrics: HubMetrics::new(),
                tracker: TaskTracker::new(),
                stop_accepting: CancellationToken::new(),
                stop: CancellationToken::new(),
                abort: CancellationToken::new(),
                auto_accept: AtomicBool::new(config.auto_accept),
                pin_guard: PinGuard::new(&config.limits, &config.protocol),
                seeds: Mutex::new(rand::SeedableRng::seed_from_u64(seed)),
                pairing_service: service.state.take(),
                config,
            }
        });
        pairing_agent::spawn(&shared, pairing_requests);
        shared.tracker.spawn(accept_loop(shared.clone(), listener));
        if let Some(discovery) = shared.config.discovery.clone() {
            // Subscribed here, not in the task: every record seen once `start` returns reaches
            // the supervisors as its own event, not only through the (bounded) snapshot.
            let events = discovery.subscribe();
            shared
                .tracker
                .spawn(sightings::follow(shared.clone(), discovery, events));
        }
        let reports = shared.callbacks.clone();
        shared.tracker.spawn(super::trust::writer::run(
            shared.config.trust_store.clone(),
            trust_queue,
            shared.stop.clone(),
            shared.config.timers.last_seen_write_interval,
            shared.config.timers.trust_write_delay,
            move |error: &super::trust::TrustStoreError| {
                reports.push(CallbackEvent::TrustStoreFailed(Arc::new(error.duplicate())));
            },
        ));
        for peer in paired {
            if peer.ski == local_ski {
                continue;
            }
            let ski = peer.ski;
            let _ = route(
                &shared,
                ski,
                Command::Paired {
                    peer,
                    dial_now: false,
                },
            );
        }
        tracing::info!(ski = %local_ski, addr = %local_addr, "hub started");
        let hub = Hub {
            _last_handle: Arc::new(StopOnDrop {
                shared: shared.clone(),
            }),
            shared,
            local_addr,
            callbacks_done: Arc::new(Mutex::new(Some(callbacks_done))),
        };
        Ok((hub, events))
    }

    /// A stream of everything the [`super::Callbacks`] hear, as [`super::HubEvent`]s, in the
    /// same order: an alternative to callbacks for an application that would rather
    /// `while let Some(event) = events.next().await`. Both are fed by one dispatcher, so they
    /// agree; decisions (pairing, PIN) are still the callbacks' (see [`super::DecideLater`]).
    ///
    /// The stream sees every event queued after this call (subscribe right after
    /// [`Hub::start`]; for the state before, read [`Hub::connection_state`] and
    /// [`Hub::connected_peers`]). Any number of streams may be open. A stream that is not read
    /// holds back the data of its peers (each data event holds its peer's inbound budget) and
    /// drops other events beyond [`super::Limits::max_queued_events`], saying so with
    /// [`super::HubEvent::Lagged`]. It ends after [`Hub::shutdown`].
    pub fn events(&self) -> super::callbacks::HubEvents {
        self.shared.callbacks.subscribe()
    }

    /// Whether this hub's own Pairing Service request is on the air (device side; see
    /// [`crate::hub::RequestPairing`]).
    pub fn pairing_request_announced(&self) -> bool {
        self.shared
            .pairing_service
            .as_ref()
            .is_some_and(ServiceState::announcing)
    }

    /// Makes this hub's own SHIP Pairing Service request at run time (device side, the
    /// control unit's role): what [`crate::hub::PairingServiceConfig::request`] does at start.
    /// The energy manager is paired (its SHIP ID stored, dialled when it is seen), the request
    /// is signed with a fresh nonce and announced until a connection to the energy manager has
    /// held for [`RequestPairing::settle_after`] (a connection that is up already counts from
    /// now), then [`crate::hub::PairingServiceEvent::RequestSettled`] is reported.
    ///
    /// One request at a time: this replaces the request made before (at start or by an earlier
    /// call), which is then never reported as settled; the energy manager it named stays
    /// paired. A request with [`RequestPairing::settled`] set is not announced and pairs
    /// nothing. Fails without a discovery ([`HubError::Discovery`]), for this hub's own SKI,
    /// or when the announcement or the trust store fails (the earlier request then stays).
    pub fn request_pairing(&self, request: RequestPairing) -> Result<(), HubError> {
        if self.shared.pairing_service.is_none() {
            return Err(HubError::Discovery(
                crate::discovery::DiscoveryError::Unsupported,
            ));
        }
        if request.energy_manager_ski == self.shared.local_ski {
            return Err(HubError::OwnSki(request.energy_manager_ski));
        }
        if !request.settled {
            self.pair(
                PairedPeer::new(request.energy_manager_ski)
                    .with_ship_id(request.energy_manager_id.clone()),
            )?;
        }
        pairing_agent::request(&self.shared, request)
    }

    /// The digests of the SHIP Pairing Service requests this hub honoured, oldest first (at
    /// most [`crate::hub::AcceptRequests::replay_capacity`]): persist it after each
    /// [`crate::hub::PairingServiceEvent::RequestAccepted`] and restore it with
    /// [`crate::hub::AcceptRequests::replay_history`], so that the replay guard survives a
    /// restart.
    pub fn pairing_replay_history(&self) -> Vec<[u8; 32]> {
        self.shared
            .pairing_service
            .as_ref()
            .map_or_else(Vec::new, ServiceState::replay_history)
    }

    /// This hub's SKI.
    pub fn local_ski(&self) -> Ski {
        self.shared.local_ski
    }

    /// The address the listener is bound to (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Pairs with a peer, given as its [`Ski`] or as a [`PairedPeer`] with what is known of it:
    /// stores the pairing and dials the peer whenever an address is known. A pairing request of
    /// the peer that waits is approved. One call stores and routes; it never waits for the
    /// disk: the pairing is in the hub's index at once (admission, routing and
    /// [`Hub::pairing`] see it) and written to the trust store in the background, in order with
    /// every other change. Await [`Hub::pairings_saved`] to know it is on disk.
    ///
    /// A field of `peer` that is set replaces the stored one; a field left empty keeps what is
    /// stored (so pairing again never forgets a name or PIN), and `paired_by_service` stays
    /// set once set. An address (`last_address`) is also dialled as a configured address, as
    /// [`Hub::add_address`] does, and is refused with [`HubError::Address`] (nothing stored)
    /// when it cannot be dialled.
    ///
    /// ```no_run
    /// # fn demo(hub: &ship_hub::hub::Hub, ski: ship_hub::Ski) -> Result<(), ship_hub::hub::HubError> {
    /// use ship_hub::hub::PairedPeer;
    /// hub.pair(ski)?;
    /// hub.pair(PairedPeer::new(ski).with_name("Heat pump").with_address(([192, 168, 1, 20], 4712).into()))?;
    /// # Ok(()) }
    /// ```
    pub fn pair(&self, peer: impl Into<PairedPeer>) -> Result<(), HubError> {
        let given: PairedPeer = peer.into();
        let ski = given.ski;
        if ski == self.shared.local_ski {
            return Err(HubError::OwnSki(ski));
        }
        let address = given.last_address;
        if let Some(address) = address {
            check_dialable(address)?;
        }
        let peer = self
            .shared
            .pairings
            .change(ski, |stored| stored.merge(given));
        route(
            &self.shared,
            ski,
            Command::Paired {
                peer,
                dial_now: true,
            },
        )?;
        if let Some(discovery) = self.shared.config.discovery.as_ref() {
            if let Some(service) = discovery.visible_service(&ski) {
                route(&self.shared, ski, sightings::sighting_command(&service))?;
            }
            // Newly preferred: the discovery reports every claim of the SKI again (its registry
            // keeps only the newest few), each as an event the supervisor learns from.
            sightings::prefer_paired(&self.shared, discovery);
        }
        if let Some(address) = address {
            // Checked above: routed as `add_address` routes it.
            route(
                &self.shared,
                ski,
                Command::StaticAddress(address, DEFAULT_SHIP_PATH.to_owned()),
            )?;
        }
        Ok(())
    }

    /// The pairing of `ski` as the hub keeps it now (what it learnt included), if `ski` is
    /// paired. From memory: it never touches the disk.
    pub fn pairing(&self, ski: Ski) -> Option<PairedPeer> {
        self.shared.pairings.get(&ski)
    }

    /// Every pairing as the hub keeps it now, sorted by SKI. From memory.
    pub fn pairings(&self) -> Vec<PairedPeer> {
        self.shared.pairings.all()
    }

    /// Waits until every pairing change made so far (by the application or by the hub) is
    /// applied to the trust store. `Err` with the first write that failed since the previous
    /// call ([`HubError::TrustStore`]; the change stays in the hub's memory and is written
    /// again with the peer's next change), or [`HubError::ShutDown`] once the hub's trust
    /// writer has ended.
    pub async fn pairings_saved(&self) -> Result<(), HubError> {
        let answer = self.shared.pairings.saved().ok_or(HubError::ShutDown)?;
        answer
            .await
            .map_err(|_| HubError::ShutDown)?
            .map_err(HubError::TrustStore)
    }

    /// Tells the hub where `ski` can be dialled (a static address, e.g. from a configuration
    /// file; WebSocket path `/ship/`). Only paired peers are dialled.
    pub fn add_address(&self, ski: Ski, address: SocketAddr) -> Result<(), HubError> {
        check_dialable(address)?;
        route(
            &self.shared,
            ski,
            Command::StaticAddress(address, DEFAULT_SHIP_PATH.to_owned()),
        )
    }

    /// Removes the pairing of `ski` and closes its connections (connectionClose with reason
    /// `removedConnection`). It is not redialled. Removed from the hub's index at once and
    /// from the trust store in the background (see [`Hub::pairings_saved`]).
    pub fn unpair(&self, ski: Ski) -> Result<(), HubError> {
        self.shared.pairings.remove(&ski);
        pairing_agent::unpaired(&self.shared, ski);
        match self.shared.route_existing(ski, Command::Unpaired) {
            Ok(()) | Err(HubError::NotConnected(_)) => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// Approves the waiting pairing request of `ski`: it is paired (stored as [`Hub::pair`]
    /// stores, never waiting for the disk) and its hello turns `ready`.
    pub fn approve(&self, ski: Ski) -> Result<(), HubError> {
        let status = self.pending_request(ski)?;
        let peer = self.shared.store_approval(ski, status.ship_id);
        self.shared.route_existing(
            ski,
            Command::Paired {
                peer,
                dial_now: false,
            },
        )
    }

    /// Gives the PIN to send to `ski`, which requires one (after
    /// [`crate::hub::Callbacks::pin_requested`] answered [`crate::hub::PinDecision::Ask`]). With
    /// no connection waiting for it, it is kept for the peer's next connection. If the peer
    /// accepts it, it is stored with the pairing.
    pub fn enter_pin(&self, ski: Ski, pin: Pin) -> Result<(), HubError> {
        self.shared.route_existing(ski, Command::EnterPin(pin))
    }

    /// There is no PIN for `ski`: a connection waiting for one fails (the peer requires it).
    pub fn refuse_pin(&self, ski: Ski) -> Result<(), HubError> {
        self.shared.route_existing(ski, Command::RefusePin)
    }

    /// Stores (or with `None` removes) the PIN sent to the paired peer `ski` when it requires
    /// one (SHIP §13.4.4.3); used from its next connection on. Stored as [`Hub::pair`] stores.
    pub fn set_peer_pin(&self, ski: Ski, pin: Option<Pin>) -> Result<(), HubError> {
        let Some(peer) = self
            .shared
            .pairings
            .change_existing(ski, |peer| peer.pin = pin)
        else {
            return Err(HubError::NotPaired(ski));
        };
        route(
            &self.shared,
            ski,
            Command::Paired {
                peer,
                dial_now: false,
            },
        )
    }

    /// Refuses the waiting pairing request of `ski` (hello `aborted`, close 4452).
    pub fn deny(&self, ski: Ski) -> Result<(), HubError> {
        self.pending_request(ski)?;
        self.shared.route_existing(ski, Command::Deny)
    }

    /// The status of `ski` if a pairing request of it waits for a decision.
    fn pending_request(&self, ski: Ski) -> Result<PeerStatus, HubError> {
        match self.shared.status(&ski) {
            Some(status) if status.pending_request => Ok(status),
            _ => Err(HubError::NoPendingRequest(ski)),
        }
    }

    /// Closes the connections to `ski` gracefully. A paired peer is redialled by the usual
    /// backoff rules; use [`Hub::unpair`] to stop that.
    pub fn disconnect(&self, ski: Ski) -> Result<(), HubError> {
        self.shared.route_existing(ski, Command::Disconnect)
    }

    /// The connection state of `ski` as the application sees it.
    pub fn connection_state(&self, ski: Ski) -> ConnectionState {
        self.shared
            .status(&ski)
            .map_or(ConnectionState::None, |s| s.state)
    }

    /// Sends a data message (its SPINE payload, any JSON value) to `ski`. Queued if a replaced
    /// double connection is still completing its handshake. A payload whose data message would
    /// exceed the message-size limit ([`crate::transport::WsOptions::max_message_size`]) is
    /// refused with [`HubError::PayloadTooLarge`].
    pub fn send_data(&self, ski: Ski, payload: &[u8]) -> Result<(), HubError> {
        let text = std::str::from_utf8(payload)
            .map_err(|_| HubError::InvalidPayload("not UTF-8".to_owned()))?;
        let raw: &serde_json::value::RawValue =
            serde_json::from_str(text).map_err(|e| HubError::InvalidPayload(e.to_string()))?;
        let message_limit = self.shared.config.websocket.max_message_size;
        let message_len = crate::protocol::codec::data_message_len(raw);
        if message_len > message_limit {
            let framing = message_len - raw.get().len();
            return Err(HubError::PayloadTooLarge {
                size: raw.get().len(),
                limit: message_limit.saturating_sub(framing),
                message_limit,
            });
        }
        let registry = lock(&self.shared.registry);
        let entry = registry.get(&ski).ok_or(HubError::NotConnected(ski))?;
        if !entry.status.borrow().connected {
            return Err(HubError::NotConnected(ski));
        }
        entry
            .data
            .try_send(payload.to_vec())
            .map_err(|error| match error {
                mpsc::error::TrySendError::Full(_) => HubError::Backpressure(ski),
                mpsc::error::TrySendError::Closed(_) => HubError::NotConnected(ski),
            })
    }

    /// The live connections to `ski` (normally at most one; two while a double connection is
    /// settled).
    pub fn connections(&self, ski: Ski) -> Vec<ConnectionInfo> {
        self.shared
            .status(&ski)
            .map(|s| s.connections)
            .unwrap_or_default()
    }

    /// The peers in data exchange, with their SHIP IDs where known, sorted by SKI.
    pub fn connected_peers(&self) -> Vec<(Ski, Option<ShipId>)> {
        let registry = lock(&self.shared.registry);
        let mut peers: Vec<(Ski, Option<ShipId>)> = registry
            .iter()
            .filter_map(|(ski, entry)| {
                let status = entry.status.borrow();
                status.connected.then(|| (*ski, status.ship_id.clone()))
            })
            .collect();
        peers.sort_by_key(|peer| peer.0);
        peers
    }

    /// Turns auto-accept on or off. On means every unknown peer is paired without asking: the
    /// SHIP specification forbids that mode, since anyone on the LAN can then connect; see
    /// `docs/pairing.md`.
    pub fn set_auto_accept(&self, on: bool) -> Result<(), HubError> {
        let before = self.shared.auto_accept.swap(on, Ordering::Relaxed);
        if before != on
            && let Some(discovery) = &self.shared.config.discovery
        {
            // `register` changed: re-announce (SHIP §7.3.2).
            discovery
                .announce(sightings::announcement(
                    &self.shared,
                    self.local_addr.port(),
                ))
                .map_err(HubError::Discovery)?;
        }
        Ok(())
    }

    /// The SHIP services visible on the LAN (empty without a discovery).
    pub fn visible_services(&self) -> Vec<crate::discovery::VisibleService> {
        self.shared
            .config
            .discovery
            .as_ref()
            .map(|d| d.visible())
            .unwrap_or_default()
    }

    /// Whether auto-accept is on.
    pub fn auto_accept(&self) -> bool {
        self.shared.auto_accept.load(Ordering::Relaxed)
    }

    /// Counters since start.
    pub fn metrics(&self) -> MetricsSnapshot {
        let mut snapshot = self.shared.metrics.snapshot();
        let inbound = self.shared.callbacks.inbound();
        snapshot.inbound_queued_bytes = inbound.queued() as u64;
        snapshot.inbound_queued_peak_bytes = inbound.peak() as u64;
        snapshot
    }

    /// How many tasks the hub runs right now: listener, supervisors, links, admissions, dials,
    /// the trust writer and the discovery follower (not the callback dispatcher). A diagnostic
    /// for leak tests (feature `test-util`), not a stable interface.
    #[cfg(any(test, feature = "test-util"))]
    #[doc(hidden)]
    pub fn task_count(&self) -> usize {
        self.shared.tracker.len()
    }

    /// Shuts the hub down in phases (docs/ship.md §10): stop accepting; cancel dials and
    /// reconnect timers; close every connection with connectionClose and wait for the confirm
    /// (up to its maxTime), then the WebSocket close frame; all within the configured overall
    /// deadline, after which remaining connections are dropped. Every task the hub spawned has
    /// ended when this returns.
    pub async fn shutdown(&self) -> ShutdownReport {
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + self.shared.config.timers.shutdown_deadline;
        let mut report = ShutdownReport::default();
        // Phase 1: stop accepting.
        self.shared.stop_accepting.cancel();
        report.listener_stopped = true;
        // Phase 2: withdraw the mDNS announcements (goodbye).
        pairing_agent::shutdown(&self.shared);
        if let Some(discovery) = &self.shared.config.discovery {
            report.announcement_withdrawn = matches!(
                tokio::time::timeout_at(deadline, discovery.withdraw()).await,
                Ok(Ok(()))
            );
        }
        // Phases 3 and 4: supervisors cancel dials and close their links gracefully.
        report.peers_stopped = lock(&self.shared.registry).len();
        self.shared.stop.cancel();
        self.shared.tracker.close();
        report.connections_closed_in_time =
            tokio::time::timeout_at(deadline, self.shared.tracker.wait())
                .await
                .is_ok();
        if !report.connections_closed_in_time {
            report.tasks_aborted = self.shared.tracker.len();
            self.shared.abort.cancel();
            self.shared.tracker.wait().await;
        }
        // Last: the callback dispatcher delivers what is queued, then ends. A callback that never
        // returns cannot be ended from here; it is reported instead of waited for forever.
        self.shared.callbacks.push(CallbackEvent::Stop);
        let done = lock(&self.callbacks_done).take();
        if let Some(done) = done {
            let grace = deadline.saturating_duration_since(tokio::time::Instant::now())
                + Duration::from_secs(1);
            report.callbacks_finished = tokio::time::timeout(grace, done).await.is_ok();
        }
        report.elapsed = started.elapsed();
        report
    }
}
