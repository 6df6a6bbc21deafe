/**
 * The demo shop: fake products, a cart counter and the language switch. The customer-service chat is not part of
 * this module: the page adds it the way any site would, with `<script src="/widget.js" async></script>`.
 *
 * @module
 */
import { extend, initI18n, setText } from "./i18n.js";

extend({
  en: {
    "shop.title": "Switchboard Demo Shop",
    "shop.heading": "Demo Shop",
    "shop.cart": "Cart: {n}",
    "shop.heroTitle": "Everything for your desk",
    "shop.heroText":
      "Questions about an order? Click the chat bubble at the bottom right; our agents answer live.",
    "shop.add": "Add to cart",
    "shop.p1": "Desk lamp",
    "shop.p1d": "Warm light, three brightness levels, USB-C.",
    "shop.p2": "Ceramic mug",
    "shop.p2d": "350 ml, dishwasher safe, hand glazed.",
    "shop.p3": "Dot-grid notebook",
    "shop.p3d": "A5, 160 pages of 100 g paper.",
    "shop.p4": "Mechanical keyboard",
    "shop.p4d": "75% layout, hot-swap switches, bilingual keycaps.",
    "shop.note": "This shop is a demo: nothing is for sale. The chat widget is added by one script tag.",
  },
  zh: {
    "shop.title": "Switchboard 演示商店",
    "shop.heading": "演示商店",
    "shop.cart": "购物车：{n}",
    "shop.heroTitle": "书桌上的一切",
    "shop.heroText": "订单有问题？点击右下角的聊天气泡，客服实时为你解答。",
    "shop.add": "加入购物车",
    "shop.p1": "台灯",
    "shop.p1d": "暖光，三档亮度，USB-C 供电。",
    "shop.p2": "陶瓷马克杯",
    "shop.p2d": "350 毫升，可用洗碗机，手工上釉。",
    "shop.p3": "点阵笔记本",
    "shop.p3d": "A5，160 页 100 克纸。",
    "shop.p4": "机械键盘",
    "shop.p4d": "75% 配列，热插拔轴，中英双语键帽。",
    "shop.note": "这是一个演示商店：没有任何商品出售。聊天窗口只用一个 script 标签加入。",
  },
});
initI18n();

let inCart = 0;
for (const button of document.querySelectorAll("#products .add")) {
  button.addEventListener("click", () => {
    inCart++;
    setText(/** @type {HTMLElement} */ (document.getElementById("cart")), "shop.cart", { n: inCart });
  });
}
