//! The space reserve's setting (see [`crate::space`]): kept as the system setting
//! [`RESERVE_SETTING`] (a number of bytes), read at open and changed through the engine.

use super::Engine;
use crate::error::Result;
use crate::space::{SpaceInfo, RESERVE_SETTING};

impl Engine {
    /// Reads the reserve setting into the running engine. A damaged setting never keeps the
    /// store from opening: the default reserve applies until it is set again (`space` and
    /// `space_reserve_setting` report the damage).
    pub(super) fn load_space_reserve(&self) {
        self.inner.reserve.set(self.setting::<u64>(RESERVE_SETTING).unwrap_or(None));
    }

    /// The free space of the data directory's filesystem and the space reserve in force.
    pub fn space(&self) -> Result<SpaceInfo> {
        self.space_reserve_setting()?;
        self.inner.reserve.info(self.dir())
    }

    /// The space reserve as set (`None`: the default applies). A damaged setting is
    /// [`crate::ErrorKind::Corrupt`].
    pub fn space_reserve_setting(&self) -> Result<Option<u64>> {
        self.setting(RESERVE_SETTING)
    }

    /// Sets the space reserve to `bytes` as given (0: no reserve; the default's clamps do not
    /// apply), or back to the default with `None`; durable before it returns, in force at once.
    pub fn set_space_reserve(&self, bytes: Option<u64>) -> Result<()> {
        match bytes {
            Some(b) => self.put_setting(RESERVE_SETTING, &b)?,
            None => {
                self.remove_setting(RESERVE_SETTING)?;
            }
        }
        self.inner.reserve.set(bytes);
        Ok(())
    }
}
