"""Refusals of the queue and urgent-passport domain, mapped to the error envelope."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

from app.errors import Conflict, Forbidden, ValidationFailed, local_datetime_text, local_time_text


class ServiceNotOffered(Conflict):
    code = "service_not_offered"
    message = _l("This service is not offered at this centre.")


class RemoteTicketsDisabled(Forbidden):
    code = "remote_tickets_disabled"
    message = _l("This centre does not issue tickets through the app. Please take a ticket at the kiosk.")


class ActiveTicketExists(Conflict):
    code = "active_ticket_exists"
    message = _l("You already have a ticket waiting. Use it or wait until it is served.")


class TicketState(Conflict):
    code = "ticket_state"
    message = _l("This ticket cannot do that in its current state.")


class CounterNotOpen(Conflict):
    code = "counter_not_open"
    message = _l("Open the counter first.")


class CounterInUse(Conflict):
    code = "counter_in_use"
    message = _l("Another clerk opened this counter at the same moment. Try again.")


class ServiceNotServed(ValidationFailed):
    code = "service_not_served"
    message = _l("A counter can serve only services offered at its centre.")


class UrgentRequestPending(Conflict):
    code = "urgent_request_pending"
    message = _l("You already have an urgent request waiting for a decision.")


class UrgentQuotaExceeded(Conflict):
    code = "urgent_quota_exceeded"
    message = _l("You have reached the limit of urgent approvals for this year.")


class UrgentNotAllowed(ValidationFailed):
    code = "urgent_not_allowed"
    message = _l("Urgent requests are only for passport services.")


class UrgentAlreadyDecided(Conflict):
    code = "urgent_already_decided"
    message = _l("This urgent request has already been decided.")


class InvalidDate(ValidationFailed):
    code = "invalid_date"
    message = _l("Choose a date from today on.")


class RatingNotAllowed(Conflict):
    code = "rating_not_allowed"
    message = _l("You can rate a visit once, after it is finished.")


class CentreClosed(Conflict):
    code = "centre_closed"
    message = _l("The centre is closed now. Tickets are issued during opening hours.")

    def render_message(self) -> str:
        opens_at = self.details.get("opens_at")
        if not opens_at:
            return str(self.message)
        return str(
            _l(
                "The centre is closed now. Tickets are issued from %(opens_at)s.",
                opens_at=local_datetime_text(opens_at),
            )
        )


class CounterTaken(Conflict):
    code = "counter_taken"
    message = _l("Another clerk is working at this counter. Choose another counter or ask a supervisor.")

    def render_message(self) -> str:
        held_by, since = self.details.get("held_by"), self.details.get("since")
        if not (held_by and since):
            return str(self.message)
        return str(
            _l(
                "%(name)s has been working at this counter since %(since)s. Choose another counter or ask"
                " a supervisor.",
                name=held_by,
                since=local_time_text(since),
            )
        )


class AlreadyAtCounter(Conflict):
    code = "already_at_counter"
    message = _l("You are already working at another counter. Close it first.")


class TakeoverNotAllowed(Forbidden):
    code = "takeover_not_allowed"
    message = _l("Only a supervisor can take over a counter another clerk holds.")


class CounterPaused(Conflict):
    code = "counter_paused"
    message = _l("This counter is paused. Resume it to call the next visitor.")


class TicketInService(Conflict):
    code = "ticket_in_service"
    message = _l("A visitor is being served at this counter. Complete the visit first.")


class VisitServiceNotOffered(ValidationFailed):
    code = "visit_service_not_offered"
    message = _l("One of the services chosen is not offered at this centre.")

    def render_message(self) -> str:
        service = self.details.get("service")
        if not service:
            return str(self.message)
        return str(_l("The service %(service)s is not offered at this centre.", service=service))
