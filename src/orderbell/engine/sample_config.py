"""The sample configuration ``orderbell init`` writes, and the default rules it spells out.

Kept as Python text (not a data file) so it ships with the package without package-data
rules. ``@@WEBHOOK_SECRET@@`` is replaced by ``configfile.sample_config()``.
The ``rules:`` written out must equal ``orderbell.domain.policy.DEFAULT_RULES`` (a test
checks), so the sample shows what a tenant without rules gets.
"""

from __future__ import annotations

SAMPLE_CONFIG = """\
# Order Bell configuration.
#
# Load it with:   orderbell apply orderbell.yaml
# Applying is idempotent: run it again after every edit. Everything is checked first,
# and every problem is reported with its line, so nothing is half-applied.
#
# Secrets: write ${ENV_VAR} (or ${ENV_VAR:-fallback}) instead of the value. Values that
# come from ${...} and the fields each provider marks secret are stored encrypted with
# ORDERBELL_SECRET_KEY and shown masked. Write $${ to mean a literal "${".
#
# Durations are written 90s, 5m, 2h, 1d (or 1h30m). Times of day are "HH:MM", quoted.

version: 1

tenants:
  - slug: demo                      # lower-case letters, digits and '-'
    name: Demo Restaurants
    # Keep message texts, raw order payloads and guests' replies this many days; workers
    # then purge them (rows, states and consent proofs stay). Absent: kept until you run
    # `orderbell privacy purge`.
    # retention_days: 90

    locations:
      - slug: downtown
        name: Downtown
        timezone: America/New_York  # an IANA time zone name
        locale: en                  # default language of messages: en, es, fr_CA, ...
        currency: USD
        phone: "+12125550100"       # shown to guests in messages
        address: "1 Main St, New York, NY"
        # Follow-ups (feedback requests) are held while it is quiet here, from `start`
        # to `end` local time. Order updates the guest is waiting for are not held.
        quiet_hours: {start: "20:00", end: "08:00"}

    # Where orders come from. Each integration gets its own webhook URL:
    #   POST <public url>/v1/webhooks/<source>/<id>
    integrations:
      - id: demo-generic            # unique in this file; the last segment of the URL
        source: generic             # `orderbell sources` lists every source
        location: downtown
        # Signing secret (Standard Webhooks, "whsec_..."). Set the environment variable
        # in production; the fallback after :- only makes this sample work out of the box.
        secret: ${ORDERBELL_DEMO_WEBHOOK_SECRET:-@@WEBHOOK_SECRET@@}
        settings: {}

    # How messages go out. `orderbell channels` lists every provider and its settings.
    # The outbox provider sends nothing: it appends each message to the outbox file in
    # the data directory (see `orderbell outbox`), so you can try everything first.
    channels:
      - name: sms
        provider: outbox
        family: sms
        priority: 100               # lower is tried first when several fit
        settings: {}
      - name: email
        provider: outbox
        family: email
        settings: {}

      # Real SMS through Twilio Programmable Messaging:
      # - name: twilio
      #   provider: twilio_sms
      #   priority: 10
      #   settings:
      #     account_sid: AC0123456789abcdef0123456789abcdef   # yours: AC + 32 hex digits
      #     auth_token: ${TWILIO_AUTH_TOKEN}
      #     from_number: "+12125550199"

      # Real email through SendGrid:
      # - name: sendgrid
      #   provider: sendgrid
      #   priority: 10
      #   settings:
      #     api_key: ${SENDGRID_API_KEY}
      #     from_email: orders@example.com

      # A staff channel, for the staff rule example below:
      # - name: kitchen
      #   provider: slack
      #   settings:
      #     webhook_url: ${KITCHEN_SLACK_WEBHOOK_URL}

    # What to send, to whom, and when. These are the defaults: leave `rules:` out and
    # a tenant gets exactly these. Each rule:
    #   trigger        a status reached (placed, confirmed, in_kitchen, ready,
    #                  out_for_delivery, completed, cancelled) or delayed, feedback,
    #                  resend (staff asked to send the status again), inquiry (the guest
    #                  asked where the order is)
    #   fulfillment    only for pickup, delivery or dine_in orders (default: all); a rule
    #                  naming the fulfilment wins over a general one for the same trigger
    #   location       only at this location (default: all)
    #   audience       guest (default), or staff:<channel name>
    #   channels       for guests, the families to try in order (sms, email, whatsapp,
    #                  ...); empty means the guest's own preference, then sms, then email
    #   template       which template to render (default: the trigger's name)
    #   delay          wait this long before sending (default: 0s)
    #   expires_after  drop the message if it could not go out within this time
    #                  (default: a sensible time for each trigger)
    #   purpose        transactional (order updates, the default), followup or marketing;
    #                  consent and quiet hours are checked per purpose
    #   enabled        false switches a rule off without deleting it
    rules:
      # "Your order is confirmed", with the expected time when the source gives one.
      - trigger: confirmed
      # Pickup orders: "ready for pickup at Downtown".
      - trigger: ready
        fulfillment: pickup
      # Dine-in orders: "on its way to your table".
      - trigger: ready
        fulfillment: dine_in
      # Delivery orders: "out for delivery, arriving about 7:40 PM".
      - trigger: out_for_delivery
        fulfillment: delivery
      # Delivery orders: "delivered. Enjoy!"
      - trigger: completed
        fulfillment: delivery
      - trigger: cancelled
      # Staff pressed "resend" on the dashboard or CLI: the current status again.
      - trigger: resend
      # The guest replied asking where the order is: answer with its status.
      - trigger: inquiry

      # More rules, off by default.
      # Tell the guest when the order runs late:
      # - trigger: delayed
      # Ask for feedback; a follow-up, so it needs follow-up consent and is held while
      # it is quiet at the location:
      # - trigger: feedback
      #   delay: 1h
      #   expires_after: 1d
      #   purpose: followup
      # Tell the kitchen's Slack channel when an order runs late:
      # - trigger: delayed
      #   audience: staff:kitchen

    # Built-in templates exist for every trigger. A template here replaces the built-in
    # one with the same name and locale. Templates are Jinja2; the parts are text (SMS
    # and chat), subject and html (email) and voice (calls). Variables include name,
    # order_number, location_name, location_phone, location_address, status_text, time,
    # total and tracking_link.
    # templates:
    #   - name: ready
    #     locale: en
    #     text: "Hi {{ name }}, order {{ order_number }} is ready at {{ location_name }}."
    #   - name: ready
    #     locale: es
    #     text: "Hola {{ name }}, tu pedido {{ order_number }} está listo en {{ location_name }}."

    # API keys are not kept in this file: create them with `orderbell keys create`.
"""
