# Solutions to the exercises of notebooks/20_transfer_task.py (see docs/course.md).

# %%
# Exercise 20.1: fit a Freeze_L1 head
def fit_freeze_l1(train_x, train_y, classes):
    """train_x: (clips, D) embeddings, train_y: (clips,) class indices -> predict(x) -> (clips,) class indices."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(0)
    x, y = torch.as_tensor(train_x, dtype=torch.float32), torch.as_tensor(train_y, dtype=torch.long)
    head = torch.nn.Linear(x.shape[1], classes)
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-3)
    for _ in range(300):
        loss = F.cross_entropy(head(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return lambda new_x: head(torch.as_tensor(new_x, dtype=torch.float32)).argmax(1).numpy()
