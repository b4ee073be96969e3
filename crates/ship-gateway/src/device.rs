//! What the gateway says about itself: its default SHIP ID, its device categories and the
//! device values it announces (TXT record, QR code). Shared by `run` and `qr`.

use ship_hub::discovery::{DeviceCategories, InstanceName, TxtField, TxtValue};
use ship_hub::hub::DeviceInfo;
use ship_hub::{ShipId, Ski};

use crate::error::GatewayError;
use crate::settings::Settings;

/// The SHIP ID a gateway takes at its first start when none is configured.
pub(crate) fn default_ship_id(ski: Ski) -> Result<ShipId, GatewayError> {
    ShipId::new(format!("ship-gateway-{}", &ski.to_string()[..12]))
        .map_err(|e| GatewayError::Setting(e.to_string()))
}

/// The device categories the gateway announces (TXT `cat`, QR `CAT`): an energy management
/// system (2).
pub(crate) const DEVICE_CATEGORIES: [u8; 1] = [2];

/// The device values the hub announces, from the settings' `[device]`.
pub(crate) fn device_info(settings: &Settings) -> Result<DeviceInfo, GatewayError> {
    let device = &settings.device;
    let value = |field: TxtField, text: &str| {
        TxtValue::new(field, text).map_err(|e| GatewayError::Setting(format!("device {e}")))
    };
    let mut info = DeviceInfo::default();
    if let Some(name) = &device.name {
        info.instance_name = Some(
            InstanceName::new(name.clone())
                .map_err(|e| GatewayError::Setting(format!("device name: {e}")))?,
        );
    }
    info.brand = Some(value(TxtField::Brand, &device.brand)?);
    info.model = Some(value(TxtField::Model, &device.model)?);
    info.device_type = Some(value(TxtField::DeviceType, &device.device_type)?);
    if let Some(serial) = &device.serial {
        info.serial = Some(value(TxtField::Serial, serial)?);
    }
    // TXT `cat` must be present (TC_SHIP_MDNS_001): the gateway announces itself as an energy
    // management system (category 2, SHIP §7.3.2).
    info.categories = DeviceCategories::new(DEVICE_CATEGORIES.to_vec())
        .map_err(|e| GatewayError::Setting(format!("device categories: {e}")))?;
    Ok(info)
}
