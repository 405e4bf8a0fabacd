"""Members of the caller's tenant, invitations, API keys and the plan's usage."""

from __future__ import annotations

from litestar import Controller, delete, get, patch, post

from api import schemas
from api.security import requires_scope
from api.services.keys import KeyService
from api.services.members import MemberService
from api.services.plans import UsageService


class MemberController(Controller):
    path = "/v1/members"
    tags = ["members"]

    @get("/", operation_id="listMembers", sync_to_thread=True, guards=[requires_scope("read")])
    def list_members(self, members: MemberService) -> list[schemas.Member]:
        """The tenant's people and their roles."""
        return members.members()

    @patch(
        "/{user_id:str}",
        operation_id="changeMemberRole",
        sync_to_thread=True,
        guards=[requires_scope("admin")],
    )
    def change_role(
        self, user_id: str, data: schemas.MemberUpdate, members: MemberService
    ) -> schemas.Member:
        """Change a member's role (owner, admin, member, viewer). Only an owner makes or
        unmakes owners; the last owner cannot be demoted. Audited."""
        return members.change_role(user_id, data.role)

    @delete(
        "/{user_id:str}",
        operation_id="removeMember",
        sync_to_thread=True,
        status_code=204,
        guards=[requires_scope("admin")],
    )
    def remove(self, user_id: str, members: MemberService) -> None:
        """Remove a member (their API keys stop working with them). The last owner stays.
        Audited."""
        members.remove(user_id)

    @get(
        "/invitations",
        operation_id="listInvitations",
        sync_to_thread=True,
        guards=[requires_scope("admin")],
    )
    def invitations(self, members: MemberService) -> list[schemas.Invitation]:
        """Invitations, newest first, with their state (pending, accepted, revoked, expired)."""
        return members.invitations()

    @post(
        "/invitations",
        operation_id="inviteMember",
        sync_to_thread=True,
        status_code=201,
        guards=[requires_scope("admin")],
    )
    def invite(self, data: schemas.InvitationCreate, members: MemberService) -> schemas.Invitation:
        """Invite a person by e-mail with a role: a single-use link valid 7 days, mailed. With
        no mail server configured the link is logged and returned here once (`accept_url`) for
        you to pass on. Audited."""
        return members.invite(data.email, data.role)

    @delete(
        "/invitations/{invitation_id:str}",
        operation_id="revokeInvitation",
        sync_to_thread=True,
        status_code=204,
        guards=[requires_scope("admin")],
    )
    def revoke_invitation(self, invitation_id: str, members: MemberService) -> None:
        """The link stops working at once. Audited."""
        members.revoke_invitation(invitation_id)


class KeyController(Controller):
    path = "/v1/keys"
    tags = ["keys"]
    guards = [requires_scope("admin")]

    @get("/", operation_id="listApiKeys", sync_to_thread=True)
    def list_keys(
        self, keys: KeyService, include_revoked: bool = False
    ) -> list[schemas.ApiKeyInfo]:
        """The tenant's API keys: name, prefix, scopes, creator, created, last used, expiry."""
        return keys.keys(include_revoked)

    @post("/", operation_id="createApiKey", sync_to_thread=True, status_code=201)
    def create(self, data: schemas.ApiKeyCreate, keys: KeyService) -> schemas.ApiKeyCreated:
        """A new key with scopes (read, write, train, deploy, inference, admin; never more than
        your own) and an optional expiry. The secret is in this answer only. Audited."""
        return keys.create(data.name, data.scopes, data.expires_at, data.expires_in_days)

    @delete("/{key_id:str}", operation_id="revokeApiKey", sync_to_thread=True, status_code=200)
    def revoke(self, key_id: str, keys: KeyService) -> schemas.ApiKeyInfo:
        """Revoke at once: the next request with the key is refused. Audited."""
        return keys.revoke(key_id)


class UsageController(Controller):
    path = "/v1/usage"
    tags = ["members"]

    @get("/", operation_id="getUsage", sync_to_thread=True, guards=[requires_scope("read")])
    def usage(self, usage: UsageService) -> schemas.Usage:
        """The tenant's plan and, per limit, what is allowed, used and left."""
        return usage.report()
