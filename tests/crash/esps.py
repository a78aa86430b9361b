"""The ESPs the crash test drives, by the name `--esp` takes (that of `listsync emulate`)."""

from __future__ import annotations

from tests.crash.esp import CrashEsp
from tests.crash.esp_constantcontact import ConstantContactCrash
from tests.crash.esp_dotdigital import DotdigitalCrash
from tests.crash.esp_mailchimp import MailchimpCrash

ESPS: dict[str, type[CrashEsp]] = {
    esp.name: esp for esp in (DotdigitalCrash, ConstantContactCrash, MailchimpCrash)
}
