"""Every fake server, by the name ``python -m tests.fakes.serve NAME`` takes."""

from __future__ import annotations

from tests.fakes.apprise_channel import FakeAppriseJson
from tests.fakes.discord import FakeDiscord
from tests.fakes.echo import EchoFake
from tests.fakes.freshdesk import FakeFreshdesk
from tests.fakes.gmail import FakeGmail
from tests.fakes.google_chat import FakeGoogleChat
from tests.fakes.harness import FakeServer
from tests.fakes.hubspot_crm import FakeHubSpotCrm
from tests.fakes.intercom import FakeIntercom
from tests.fakes.mailgun import FakeMailgun
from tests.fakes.messagebird import FakeMessageBird
from tests.fakes.messenger import FakeMessenger
from tests.fakes.pagerduty import FakePagerDuty
from tests.fakes.plivo import FakePlivo
from tests.fakes.pusher_beams import FakePusherBeams
from tests.fakes.sendgrid import FakeSendGrid
from tests.fakes.shopify_fulfillment import FakeShopifyFulfillment
from tests.fakes.slack import FakeSlack
from tests.fakes.sns import FakeSns
from tests.fakes.teams import FakeTeams
from tests.fakes.twilio import FakeTwilio
from tests.fakes.twilio_voice import FakeTwilioVoice
from tests.fakes.viber import FakeViber
from tests.fakes.whatsapp import FakeWhatsApp
from tests.fakes.zoho_crm import FakeZohoCrm

FAKES: dict[str, type[FakeServer]] = {
    "echo": EchoFake,
    "twilio": FakeTwilio,
    "sendgrid": FakeSendGrid,
    "whatsapp": FakeWhatsApp,
    "messenger": FakeMessenger,
    "viber": FakeViber,
    "slack": FakeSlack,
    "teams": FakeTeams,
    "google_chat": FakeGoogleChat,
    "discord": FakeDiscord,
    "pagerduty": FakePagerDuty,
    "pusher_beams": FakePusherBeams,
    "intercom": FakeIntercom,
    "freshdesk": FakeFreshdesk,
    "hubspot_crm": FakeHubSpotCrm,
    "zoho_crm": FakeZohoCrm,
    "shopify_fulfillment": FakeShopifyFulfillment,
    "apprise_json": FakeAppriseJson,
    "twilio_voice": FakeTwilioVoice,
    "plivo": FakePlivo,
    "messagebird": FakeMessageBird,
    "sns": FakeSns,
    "mailgun": FakeMailgun,
    "gmail": FakeGmail,
}
