"""The brand-safety screen: flags on posts (captions and images) by GARM category, stored
beside the posts, and the per-account view that search filters with."""
