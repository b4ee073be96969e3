//! The SHIP Pairing Service at work in the hub: checking its configuration and announcing our
//! request at start ([`prepare`]), following and evaluating the requests of others, pairing the
//! certificate a verified request named when it connects ([`claim`]), and withdrawing our request
//! once it settled. Its state is in [`super::shared`] (the hub's tasks share it), its settings
//! and events in [`crate::hub::pairing_config`].

use std::collections::VecDeque;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, broadcast};

use super::handover::Command;
use super::shared::Shared;
use super::shared::{AcceptState, Pending, RequestState, ServiceState};
use super::sightings;
use super::supervisor::route;
use crate::Ski;
use crate::discovery::{DiscoveryError, PairingAnnouncement, PairingEvent, PairingSighting};
use crate::hub::callbacks::CallbackEvent;
use crate::hub::config::HubConfig;
use crate::hub::errors::HubError;
use crate::hub::pairing_config::{PairingServiceEvent, RequestPairing};
use crate::hub::trust::PairedPeer;
use crate::pairing_service::{
    Fingerprint, Nonce, PairingRequest, Receiver, ReceiverConfig, Refusal, ReplayGuard, Requester,
    UnitReachability, sign,
};
use crate::sync::lock;

/// What [`prepare`] leaves for [`spawn`].
pub(crate) struct Prepared {
    pub(crate) state: Option<ServiceState>,
    requests: Option<broadcast::Receiver<PairingEvent>>,
}

/// Checks the configuration, pairs the energy manager (device side), announces our request and
/// subscribes to requests (energy-manager side). Everything that can fail; nothing is spawned.
pub(crate) fn prepare(config: &HubConfig, local_ski: Ski) -> Result<Prepared, HubError> {
    let service = &config.pairing_service;
    let Some(discovery) = config.discovery.as_ref() else {
        if service.accept.is_none() && service.request.is_none() {
            return Ok(Prepared {
                state: None,
                requests: None,
            });
        }
        return Err(HubError::Discovery(DiscoveryError::Unsupported));
    };
    let own_fingerprint = Fingerprint::of_certificate(config.identity.certificate_der());
    let mut requests = None;
    let accept = match &service.accept {
        Some(accept) => {
            requests = Some(discovery.subscribe_pairing().map_err(HubError::Discovery)?);
            let mut receiver_config = ReceiverConfig::new(
                config.ship_id.clone(),
                own_fingerprint,
                accept.secret.clone(),
            );
            receiver_config.replay_capacity = accept.replay_capacity;
            receiver_config.replaceable_after = accept.replaceable_after;
            let unit = config
                .trust_store
                .load_all()?
                .into_iter()
                .find(|p| p.paired_by_service)
                .map(|p| p.ski);
            let guard = ReplayGuard::from_entries(
                accept.replay_history.iter().copied(),
                accept.replay_capacity,
            );
            Some(Mutex::new(AcceptState {
                receiver: Receiver::new(receiver_config).with_guard(guard),
                config: accept.clone(),
                pending: None,
                unit,
                unit_connected: false,
                unit_last_exchange: Duration::ZERO,
                evaluated: VecDeque::new(),
                deferred: VecDeque::new(),
                last_report: None,
            }))
        }
        None => None,
    };
    let request = match &service.request {
        Some(request) => {
            if request.energy_manager_ski == local_ski {
                return Err(HubError::OwnSki(local_ski));
            }
            // A settled request paired the energy manager long ago: whether it is still paired
            // is the application's business (an unpair must stick across restarts).
            if !request.settled
                && config
                    .trust_store
                    .get(&request.energy_manager_ski)?
                    .is_none()
            {
                let mut peer = PairedPeer::new(request.energy_manager_ski);
                peer.ship_id = Some(request.energy_manager_id.clone());
                config.trust_store.upsert(peer)?;
            }
            Some(Arc::new(make_request(config, local_ski, request)?))
        }
        None => None,
    };
    Ok(Prepared {
        state: Some(ServiceState {
            started: tokio::time::Instant::now(),
            accept,
            unit_changed: Notify::new(),
            request: Mutex::new(request),
        }),
        requests,
    })
}

/// Signs `request` for this node (with a fresh nonce) and announces it, unless it settled in
/// an earlier run. The announcement replaces the one on the air, if any.
fn make_request(
    config: &HubConfig,
    local_ski: Ski,
    request: &RequestPairing,
) -> Result<RequestState, HubError> {
    let discovery = config
        .discovery
        .as_ref()
        .ok_or(HubError::Discovery(DiscoveryError::Unsupported))?;
    let own_fingerprint = Fingerprint::of_certificate(config.identity.certificate_der());
    let signed = sign(
        &PairingRequest::new(
            request.energy_manager_id.clone(),
            request.energy_manager_fingerprint,
            config.ship_id.clone(),
            own_fingerprint,
            Nonce::random(),
        ),
        &request.secret,
    );
    let requester = if request.settled {
        Requester::settled(signed)
    } else {
        // The SHIP service's instance name (the Pairing Service asks for it).
        let name = sightings::announcement_of(config, local_ski, false, 0).instance_name;
        discovery
            .announce_pairing(PairingAnnouncement::new(name, signed.to_pairs()))
            .map_err(HubError::Discovery)?;
        Requester::new(signed, request.settle_after)
    };
    Ok(RequestState {
        target: request.energy_manager_ski,
        requester: Mutex::new(requester),
        changed: Notify::new(),
    })
}

/// Starts the tasks: the request follower and the settle timer.
pub(crate) fn spawn(shared: &Arc<Shared>, requests: Option<broadcast::Receiver<PairingEvent>>) {
    if let Some(requests) = requests {
        shared
            .tracker
            .spawn(follow_requests(shared.clone(), requests));
    }
    if let Some(request) = shared
        .pairing_service
        .as_ref()
        .and_then(ServiceState::current_request)
        && lock(&request.requester).is_announcing()
    {
        shared.tracker.spawn(settle(shared.clone(), request));
    }
}

/// Makes (or replaces) our own request at run time ([`crate::hub::Hub::request_pairing`]): it is
/// signed with a fresh nonce and announced, replacing the request made before (which is then
/// never reported as settled). The energy manager must be paired by the caller.
pub(crate) fn request(shared: &Arc<Shared>, request: RequestPairing) -> Result<(), HubError> {
    let service = shared
        .pairing_service
        .as_ref()
        .ok_or(HubError::Discovery(DiscoveryError::Unsupported))?;
    if request.energy_manager_ski == shared.local_ski {
        return Err(HubError::OwnSki(shared.local_ski));
    }
    let mut slot = lock(&service.request);
    // Announced before the old one is retired: if that fails, the old one stays as it was.
    let new = Arc::new(make_request(&shared.config, shared.local_ski, &request)?);
    let old_announced = slot.take().is_some_and(|old| {
        let was = lock(&old.requester).withdraw();
        old.changed.notify_one();
        was
    });
    let announcing = lock(&new.requester).is_announcing();
    if old_announced && !announcing {
        withdraw(shared);
    }
    // A connection to the energy manager that is up already (it was paired by its SKI before)
    // counts from now. Checked under the slot's lock: a change of its presence after this is
    // told to the new request.
    if announcing && peer_connected(shared, request.energy_manager_ski) {
        lock(&new.requester).on_connected(service.now());
    }
    *slot = Some(new.clone());
    drop(slot);
    tracing::info!(
        energy_manager = %request.energy_manager_ski,
        announcing,
        "pairing service: our request is made"
    );
    if announcing {
        shared.tracker.spawn(settle(shared.clone(), new));
    }
    Ok(())
}

/// Whether `ski` is shown connected (in data exchange).
fn peer_connected(shared: &Shared, ski: Ski) -> bool {
    lock(&shared.registry)
        .get(&ski)
        .is_some_and(|entry| entry.status.borrow().connected)
}

impl Prepared {
    /// Splits off the subscription for [`spawn`].
    pub(crate) fn take_requests(&mut self) -> Option<broadcast::Receiver<PairingEvent>> {
        self.requests.take()
    }
}

async fn follow_requests(shared: Arc<Shared>, mut events: broadcast::Receiver<PairingEvent>) {
    let Some(service) = shared.pairing_service.as_ref() else {
        return;
    };
    let Some(accept) = service.accept.as_ref() else {
        return;
    };
    loop {
        let recheck = lock(accept).recheck_at();
        let sleep = async {
            match recheck {
                Some(at) => tokio::time::sleep_until(service.started + at).await,
                None => std::future::pending().await,
            }
        };
        let event = tokio::select! {
            _ = shared.stop.cancelled() => return,
            _ = service.unit_changed.notified() => continue,
            _ = sleep => {
                let deferred = std::mem::take(&mut lock(accept).deferred);
                for sighting in deferred {
                    evaluate_now(&shared, &sighting);
                }
                continue;
            }
            event = events.recv() => event,
        };
        match event {
            Ok(PairingEvent::Announced(sighting)) => evaluate(&shared, &sighting),
            Ok(PairingEvent::Withdrawn { instance }) => {
                let mut state = lock(accept);
                state.evaluated.retain(|(i, _)| *i != instance);
                state.deferred.retain(|s| s.instance != instance);
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::debug!(missed, "pairing requests: fell behind, some were skipped");
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

fn record_hash(sighting: &PairingSighting) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    sighting.properties.hash(&mut hasher);
    hasher.finish()
}

/// Evaluates one announced record, unless the same record from the same instance was evaluated
/// already.
fn evaluate(shared: &Arc<Shared>, sighting: &PairingSighting) {
    let Some(accept) = shared
        .pairing_service
        .as_ref()
        .and_then(|s| s.accept.as_ref())
    else {
        return;
    };
    {
        let mut state = lock(accept);
        let hash = record_hash(sighting);
        if state
            .evaluated
            .iter()
            .any(|(instance, h)| *instance == sighting.instance && *h == hash)
        {
            return;
        }
        state
            .evaluated
            .retain(|(instance, _)| *instance != sighting.instance);
        state.evaluated.push_back((sighting.instance.clone(), hash));
        let cap = state.config.max_tracked_requests.max(1);
        while state.evaluated.len() > cap {
            state.evaluated.pop_front();
        }
    }
    evaluate_now(shared, sighting);
}

/// Evaluates one announced record.
fn evaluate_now(shared: &Arc<Shared>, sighting: &PairingSighting) {
    let Some(service) = shared.pairing_service.as_ref() else {
        return;
    };
    let Some(accept) = service.accept.as_ref() else {
        return;
    };
    let now = service.now();
    let mut state = lock(accept);
    state.deferred.retain(|s| s.instance != sighting.instance);
    let unit = match state.unit {
        None => UnitReachability::NoUnit,
        Some(_) if state.unit_connected => UnitReachability::Connected,
        Some(_) => UnitReachability::LastExchange(state.unit_last_exchange),
    };
    let event = match state.receiver.evaluate(sighting.properties(), unit, now) {
        Ok(request) => {
            tracing::info!(
                instance = %crate::text::Escaped(&sighting.instance),
                ship_id = %request.trust_id,
                fingerprint = %request.trust_fingerprint,
                "pairing service: request verified; its certificate is paired when it connects"
            );
            state.pending = Some(Pending {
                fingerprint: request.trust_fingerprint,
                ship_id: request.trust_id.clone(),
            });
            PairingServiceEvent::RequestAccepted {
                instance: sighting.instance.clone(),
                ship_id: request.trust_id,
                fingerprint: request.trust_fingerprint,
            }
        }
        Err(Refusal::NotForThisNode) => return,
        Err(error) => {
            if matches!(error, Refusal::Busy { .. }) {
                state.deferred.push_back(sighting.clone());
                let cap = state.config.max_tracked_requests.max(1);
                while state.deferred.len() > cap {
                    state.deferred.pop_front();
                }
            }
            let reported = tokio::time::Instant::now();
            if state
                .last_report
                .is_some_and(|at| reported < at + state.config.refusal_report_interval)
            {
                tracing::debug!(
                    instance = %crate::text::Escaped(&sighting.instance),
                    %error,
                    "pairing request refused"
                );
                return;
            }
            state.last_report = Some(reported);
            tracing::info!(
                instance = %crate::text::Escaped(&sighting.instance),
                %error,
                "pairing request refused"
            );
            PairingServiceEvent::RequestRefused {
                instance: sighting.instance.clone(),
                error,
            }
        }
    };
    drop(state);
    shared.callbacks.push(CallbackEvent::PairingService(event));
}

/// An incoming TLS client with `ski` presented `certificate`: if it is the one a verified
/// request named, it is paired now (before any SHIP message). Returns whether it was.
pub(crate) fn claim(shared: &Arc<Shared>, ski: Ski, certificate: &[u8]) -> bool {
    let Some(service) = shared.pairing_service.as_ref() else {
        return false;
    };
    let Some(accept) = service.accept.as_ref() else {
        return false;
    };
    let fingerprint = Fingerprint::of_certificate(certificate);
    let mut state = lock(accept);
    if state
        .pending
        .as_ref()
        .is_none_or(|p| p.fingerprint != fingerprint)
    {
        return false;
    }
    let mut peer = PairedPeer::new(ski);
    peer.ship_id = state.pending.as_ref().map(|p| p.ship_id.clone());
    peer.paired_by_service = true;
    let Some(pending) = state.pending.take() else {
        return false;
    };
    let peer = shared.pairings.change(ski, |stored| stored.merge(peer));
    let displaced = state.unit.replace(ski).filter(|old| *old != ski);
    state.unit_connected = false;
    state.unit_last_exchange = service.now();
    drop(state);
    if let Some(old) = displaced {
        shared.pairings.remove(&old);
        let _ = shared.route_existing(old, Command::Unpaired);
    }
    let _ = route(
        shared,
        ski,
        Command::Paired {
            peer,
            dial_now: false,
        },
    );
    tracing::info!(%ski, ship_id = %pending.ship_id, ?displaced, "paired by the pairing service");
    shared.callbacks.push(CallbackEvent::PairingService(
        PairingServiceEvent::PairedByService {
            ski,
            ship_id: pending.ship_id,
            displaced,
        },
    ));
    true
}

/// `ski` was unpaired by the application.
pub(crate) fn unpaired(shared: &Shared, ski: Ski) {
    let Some(service) = shared.pairing_service.as_ref() else {
        return;
    };
    if let Some(accept) = service.accept.as_ref() {
        let mut state = lock(accept);
        if state.unit == Some(ski) {
            state.unit = None;
            state.unit_connected = false;
            drop(state);
            service.unit_changed.notify_one();
        }
    }
    let slot = lock(&service.request);
    if let Some(request) = slot.as_ref()
        && request.target == ski
        && lock(&request.requester).withdraw()
    {
        // The energy manager is untrusted: the request comes down at once (§4.2).
        withdraw(shared);
        request.changed.notify_one();
    }
}

fn withdraw(shared: &Shared) {
    if let Some(discovery) = &shared.config.discovery
        && let Err(error) = discovery.withdraw_pairing()
    {
        tracing::warn!(%error, "pairing service: cannot withdraw our request");
    }
}

/// Withdraws our request at shutdown (it is announced again at the next start unless settled).
pub(crate) fn shutdown(shared: &Shared) {
    if shared
        .pairing_service
        .as_ref()
        .is_some_and(ServiceState::announcing)
    {
        withdraw(shared);
    }
}

/// Withdraws `request` once a connection to the energy manager has held long enough. Ends
/// when it is no longer announced (settled, withdrawn by an unpair, or replaced).
async fn settle(shared: Arc<Shared>, request: Arc<RequestState>) {
    let Some(service) = shared.pairing_service.as_ref() else {
        return;
    };
    loop {
        let (due, announcing) = {
            let requester = lock(&request.requester);
            (requester.poll_timeout(), requester.is_announcing())
        };
        if !announcing {
            return;
        }
        let sleep = async {
            match due {
                Some(due) => tokio::time::sleep_until(service.started + due).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shared.stop.cancelled() => return,
            _ = request.changed.notified() => continue,
            _ = sleep => {}
        }
        if lock(&request.requester).handle_timeout(service.now()) {
            // Still ours? A request replaced meanwhile is neither withdrawn (the newer one is
            // on the air) nor reported.
            let slot = lock(&service.request);
            if !slot.as_ref().is_some_and(|r| Arc::ptr_eq(r, &request)) {
                return;
            }
            tracing::info!("pairing service: our request settled; withdrawn for good");
            withdraw(&shared);
            drop(slot);
            shared.callbacks.push(CallbackEvent::PairingService(
                PairingServiceEvent::RequestSettled,
            ));
            return;
        }
    }
}
