"""factory_boy factories. Balances are never set here: tests fund pools through the services."""

import factory

from organizations.models import Organization, OrganizationMember, User


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user-{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.test")


class OrganizationFactory(factory.django.DjangoModelFactory):
    """An organization with its (empty) pool, created through the service."""

    class Meta:
        model = Organization

    id = factory.Sequence(lambda n: f"org-{n}")
    org_name = factory.LazyAttribute(lambda o: f"Org {o.id}")

    @classmethod
    def _create(cls, model_class, *args, **kwargs):  # type: ignore[no-untyped-def]
        from organizations.services import create_organization

        admin = kwargs.pop("created_by", None)
        return create_organization(
            org_id=kwargs["id"], org_name=kwargs["org_name"], created_by=admin, actor_label="test"
        )


class MemberFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = OrganizationMember

    org = factory.SubFactory(OrganizationFactory)
    user = factory.SubFactory(UserFactory)
    role = OrganizationMember.Role.MEMBER
    status = OrganizationMember.Status.ACTIVE
