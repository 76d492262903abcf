"""What handlers and providers ask Litestar to inject, each marked as a named dependency.

Litestar 2 inferred a dependency from a parameter's name alone and warns that 3.0 will not; these aliases
declare it. The providers are registered under the same names in `api/app.py`.
"""

from __future__ import annotations

from litestar.di import NamedDependency

from api.resources import Resources
from core.auth import Principal
from core.uow import AsyncUnitOfWork

ResourcesDep = NamedDependency[Resources]
UnitOfWorkDep = NamedDependency[AsyncUnitOfWork]
PrincipalDep = NamedDependency[Principal]
