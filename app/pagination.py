"""The paginator every domain's lists use."""

from flask_smorest import Page
from sqlalchemy import func, select

from app.extensions import DB_INT_MAX, db


class SelectPage(Page):
    """Paginate a SQLAlchemy select: a count of the whole select, then one page of it."""

    @property
    def item_count(self):
        return db.session.scalar(select(func.count()).select_from(self.collection.order_by(None).subquery()))

    @property
    def items(self):
        params = self.page_params
        if params.first_item >= DB_INT_MAX:  # past any real list; also beyond what SQL OFFSET accepts
            return []
        query = self.collection.offset(params.first_item).limit(params.page_size)
        return list(db.session.scalars(query).unique())
