from __future__ import annotations

from litestar import Controller, post
from litestar.params import JSONBody

from api.dependencies import ResourcesDep
from api.responses import WITH_BODY, errors
from core.auth import mint_token
from core.clock import utcnow
from core.schemas import TokenCreate, TokenPublic


class AuthController(Controller):
    path = "/api/auth"
    tags = ("auth",)

    @post("/token", status_code=201, opt={"access": "admin"}, responses=errors(*WITH_BODY, 501),
          summary="Mint a short-lived bearer token for a user (server key only), e.g. to hand to a browser")
    async def token(self, data: JSONBody[TokenCreate], resources: ResourcesDep) -> TokenPublic:
        minted = mint_token(resources.settings, data.user_id, data.scopes, data.ttl_seconds, utcnow())
        return TokenPublic(token=minted.token, user_id=minted.user_id, scopes=minted.scopes,
                           expires_at=minted.expires_at, expires_in=minted.expires_in)
